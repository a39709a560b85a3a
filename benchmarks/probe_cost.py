"""What a probe costs: over a reused SSH connection vs a fresh connection per probe, and `replica_status`.

    sudo .venv/bin/python benchmarks/probe_cost.py [--n 30]

Needs the lab up (`drpoc lab up`) or DRPOC_INVENTORY. Read-only: nothing is changed on the hosts.
Targets (issue 3): reused <= 0.2x fresh; replica_status <= 10 ms on the lab.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from drpoc_chaos import remote
from drpoc_chaos.replication.probes import replica_status
from drpoc_chaos.services import context as activity
from drpoc_chaos.vpn.probes import tunnel_established


def per_call(fn, n: int, before=None) -> list[float]:
    out = []
    for _ in range(n):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30, help="calls per measurement (bounded: at most 500)")
    n = min(ap.parse_args().n, 500)

    def probe() -> bool:
        return tunnel_established(site="aws")

    probe()  # warm: imports, inventory cache, first connection
    reused = per_call(probe, n)
    fresh = per_call(probe, n, before=remote.POOL.close_all)
    replica_status()
    rs_reused = per_call(replica_status, n)
    rs_fresh = per_call(replica_status, n, before=activity.close_all)
    activity.close_all()

    def med(xs: list[float]) -> float:
        return statistics.median(xs) * 1000

    print(f"probe cost, median of {n} calls (ms)")
    print(f"{'probe':<44} {'reused':>9} {'fresh':>9} {'ratio':>7}")
    print(f"{'tunnel_established (sudo ipsec statusall)':<44} {med(reused):9.1f} {med(fresh):9.1f} "
          f"{med(reused) / med(fresh):7.2f}   target <= 0.20")
    print(f"{'replica_status (SHOW REPLICA STATUS)':<44} {med(rs_reused):9.1f} {med(rs_fresh):9.1f} "
          f"{med(rs_reused) / med(rs_fresh):7.2f}   target reused <= 10 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
