"""A campaign over 4 pairs at parallelism 2 against the same 4 drills one after another, one run, side by side.

    sudo .venv/bin/python benchmarks/campaign.py [--sites 4] [--parallel 2]

Builds a fleet lab (`--sites 4`), a private Prefect server, one work pool per two spokes with a process worker each,
and runs the `dr-campaign` flow twice on the seed's VPN outage drill: `max_parallel 1` (sequential) then
`max_parallel 2`. Reports the wall times, their ratio (target <= 0.6), every drill's verdict and the blast-radius
leaks (target: none). Servers and workers are stopped by their recorded PIDs; the lab is left as the seed's
two-site lab. Bounded: each campaign has its own time bound, each drill its timeout.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "flows"))

from drpoc_chaos import scheduling as sch  # noqa: E402
from drpoc_chaos.lab.lifecycle import Lab  # noqa: E402
from drpoc_chaos.lab.topology import LabSettings, spoke_site  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args()
    import prefect.settings as ps

    lab = Lab()
    assert lab.up(LabSettings(sites=args.sites))["healthy"]
    tmp = Path(tempfile.mkdtemp(prefix="drpoc-campaign-bench-"))
    inv = yaml.safe_load(lab.paths.inventory.read_text())
    pools = {spoke_site(k): f"drpoc-bench-{'a' if k % 2 else 'b'}" for k in range(1, args.sites + 1)}
    for site, pool in pools.items():
        inv["sites"][site]["work_pool"] = pool
    inventory = tmp / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    state = tmp / "prefect"
    up = sch.schedule_up(port=free_port(), state_dir=state, worker=False, alerts=False, timeout=180,
                         out=lambda m: None)
    started: list[str] = []
    results = {}
    try:
        for pool in sorted(set(pools.values())):
            sch.start_pool_worker(pool, api_url=up["api_url"], state_dir=state)
            started.append(pool)
        with ps.temporary_settings(updates={ps.PREFECT_API_URL: up["api_url"]}):
            from campaign import dr_campaign
            for k in (1, args.parallel):
                archive = tmp / f"journal-{k}"
                t0 = time.perf_counter()
                st = dr_campaign(scenario="experiments/vpn_outage.yaml", inventory=str(inventory), selection="all",
                                 max_parallel=k, archive_dir=str(archive), return_state=True)
                wall = time.perf_counter() - t0
                record = json.loads(next((archive / "campaigns").glob("*.json")).read_text())
                leaks = 0
                for o in record["outcomes"]:
                    if o.get("journal"):
                        leaks += len(json.loads(Path(o["journal"]).read_text())["drpoc"].get("blast_radius", {})
                                     .get("leaks") or [])
                results[k] = (wall, record, leaks, st.is_completed())
                print(f"max_parallel {k}: {wall:.1f} s, {record['passed']}/{len(record['chosen'])} passed, "
                      f"{leaks} leaks", flush=True)
    finally:
        from prefect.logging.handlers import APILogWorker
        APILogWorker.drain_all(timeout=5)  # the flows' queued logs, while the server is still up
        for pool in started:
            sch.stop_pool_worker(pool, state_dir=state)
        sch.schedule_down(state_dir=state, out=lambda m: None)
        lab.up(LabSettings(sites=1))
    seq, par = results[1], results[args.parallel]
    print(f"\n| campaign ({args.sites} pairs) | wall s | passed | blast-radius leaks |\n|---|---|---|---|")
    for k, (wall, record, leaks, _ok) in results.items():
        print(f"| max_parallel {k} | {wall:.1f} | {record['passed']}/{len(record['chosen'])} | {leaks} |")
    ratio = par[0] / seq[0]
    print(f"\nratio parallel/sequential: {ratio:.2f} (target <= 0.6); leaks: {seq[2] + par[2]} (target 0)")
    return 0 if ratio <= 0.6 and seq[2] + par[2] == 0 and seq[3] and par[3] else 1


if __name__ == "__main__":
    raise SystemExit(main())
