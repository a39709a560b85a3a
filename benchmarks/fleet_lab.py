"""Fleet lab sizes on this machine: `drpoc lab up --sites N` for N = 1, 2, 4, 8, side by side in one run.

    sudo .venv/bin/python benchmarks/fleet_lab.py [--sites 1,2,4,8] [--rounds 2]

For each N: cold up (every data directory removed first: `mariadb-install-db` runs for the hub and each spoke),
warm up (`lab down`, then up with the data kept), down, and the memory the lab's processes hold once up (the sum of
their resident set sizes, from /proc, of the processes in the lab's namespaces). Every loop is bounded; the lab is
left as the seed's two-site lab at the end. Destroys the lab's data directories.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from drpoc_chaos.lab import teardown
from drpoc_chaos.lab.lifecycle import Lab
from drpoc_chaos.lab.topology import LabSettings, Paths, build_topology


def rss_mib(lab: Lab) -> float:
    total = 0
    for pid in teardown.lab_processes(lab.paths, teardown.lab_namespaces(lab)):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", default="1,2,4,8")
    ap.add_argument("--rounds", type=int, default=2, help="warm up/down rounds per size")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sites.split(",")]
    lab = Lab()
    rows = []
    for n in sizes:
        lab.down(quiet=True)
        for db in build_topology(8).database_hosts:  # every size's data directories: a true cold start
            shutil.rmtree(Paths().host_dir(db) / "mysql", ignore_errors=True)
            (Paths().host_dir(db) / "bootstrapped").unlink(missing_ok=True)
        cold = timed(lambda n=n: lab.up(LabSettings(sites=n)))
        assert lab.health()["healthy"], lab.health()["problems"]
        mem = rss_mib(lab)
        warm, down = [], []
        for _ in range(args.rounds):
            down.append(timed(lambda: lab.down(quiet=True)))
            warm.append(timed(lambda n=n: lab.up(LabSettings(sites=n))))
        assert lab.health()["healthy"]
        rows.append((n, cold, statistics.median(warm), statistics.median(down), mem))
        print(f"N={n}: cold {cold:.1f} s, warm {statistics.median(warm):.1f} s, down {statistics.median(down):.1f} s, "
              f"{mem:.0f} MiB", flush=True)
    lab.down(quiet=True)
    lab.up(LabSettings(sites=1))
    base = rows[0]
    print("\n| sites N | hosts | cold up s | warm up s | down s | memory MiB | cold vs N=1 | memory vs N=1 |")
    print("|---|---|---|---|---|---|---|---|")
    for n, cold, warm, down, mem in rows:
        print(f"| {n} | {len(build_topology(n).hosts)} | {cold:.1f} | {warm:.1f} | {down:.1f} | {mem:.0f} | "
              f"{cold / base[1]:.2f}x | {mem / base[4]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
