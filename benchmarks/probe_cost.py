"""What a probe costs: over a reused SSH connection vs a fresh connection per probe, with the gateways driven by
stroke (`ipsec statusall`) and by vici (`swanctl --list-sas`) side by side, and `replica_status`.

    sudo .venv/bin/python benchmarks/probe_cost.py [--n 30] [--modes ipsec,swanctl]

Needs root and the lab: each mode is measured on the lab in that mode (`drpoc lab up --ipsec MODE`), one after the
other in one run; the lab is left in the mode it was in. Read-only on the hosts apart from that mode switch.
Targets (issue 3): reused <= 0.2x fresh; replica_status <= 10 ms on the lab. Every tunnel probe goes through the
gateway helper (`sudo -n /usr/local/sbin/drpoc-gw status MODE`), as a drill's do.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from drpoc_chaos import remote
from drpoc_chaos.inventory import clear_cache
from drpoc_chaos.lab.lifecycle import Lab
from drpoc_chaos.lab.topology import IPSEC_MODES, LabSettings
from drpoc_chaos.replication.probes import replica_status
from drpoc_chaos.services import context as activity
from drpoc_chaos.services import gateway, gateway_helper
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


def med(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def measure_tunnel_probe(n: int) -> tuple[list[float], list[float]]:
    clear_cache()
    gateway.forget_controls()
    gateway_helper.forget_checks()
    activity.close_all()

    def probe() -> bool:
        ok = tunnel_established(site="fault")
        assert ok, "the tunnel is not up: is the lab healthy?"
        return ok

    probe()  # warm: imports, inventory cache, first connection, the helper's version check
    reused = per_call(probe, n)
    fresh = per_call(probe, n, before=remote.POOL.close_all)
    return reused, fresh


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30, help="calls per measurement (bounded: at most 500)")
    ap.add_argument("--modes", default="ipsec,swanctl", help="lab modes to measure, in order (default both)")
    args = ap.parse_args()
    n = max(1, min(args.n, 500))
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in IPSEC_MODES for m in modes):
        ap.error(f"--modes: a comma-separated list of {', '.join(IPSEC_MODES)}")

    lab = Lab()
    original = lab.read_state().get("ipsec_mode") or "ipsec"
    results: dict[str, tuple[list[float], list[float]]] = {}
    try:
        for mode in modes:
            knobs = lab.read_state().get("knobs")
            settings = LabSettings(ipsec=mode)
            if knobs:
                settings.knobs = type(settings.knobs)(**knobs)
            up = lab.up(settings)
            if not up["healthy"]:
                print(f"lab not healthy in {mode} mode: {up['problems']}", file=sys.stderr)
                return 1
            results[mode] = measure_tunnel_probe(n)
        replica_status()
        rs_reused = per_call(replica_status, n)
        rs_fresh = per_call(replica_status, n, before=activity.close_all)
        activity.close_all()
    finally:
        if lab.read_state().get("ipsec_mode", "ipsec") != original:
            knobs = lab.read_state().get("knobs")
            settings = LabSettings(ipsec=original)
            if knobs:
                settings.knobs = type(settings.knobs)(**knobs)
            lab.up(settings)

    print(f"probe cost, median of {n} calls (ms)")
    print(f"{'probe':<52} {'reused':>9} {'fresh':>9} {'ratio':>7}")
    for mode, (reused, fresh) in results.items():
        label = f"tunnel_established, {mode} ({'ipsec statusall' if mode == 'ipsec' else 'swanctl --list-sas'})"
        print(f"{label:<52} {med(reused):9.1f} {med(fresh):9.1f} {med(reused) / med(fresh):7.2f}   target <= 0.20")
    if len(results) == 2:
        (a, (ra, _)), (b, (rb, _)) = results.items()
        print(f"{'':<52} {b} / {a} reused: {med(rb) / med(ra):.2f}x")
    print(f"{'replica_status (SHOW REPLICA STATUS)':<52} {med(rs_reused):9.1f} {med(rs_fresh):9.1f} "
          f"{med(rs_reused) / med(rs_fresh):7.2f}   target reused <= 10 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
