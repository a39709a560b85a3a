"""Apply the deployments of flows/prefect.yaml (the one place they are defined) with Prefect's own `prefect deploy`.

    .venv/bin/python flows/deploy.py [--prefect-file flows/prefect.yaml] [--dry-run]

Uses the server in PREFECT_API_URL (`drpoc schedule up` does the same with its local server's). Creates the `process`
work pool if missing (`prefect deploy` refuses a missing pool), then runs `prefect --no-prompt deploy --all
--prefect-file flows/prefect.yaml` from the repository root: every key of the file (schedules, parameters, tags,
work_pool and its job_variables, concurrency_limit, triggers, pull, …) is applied by Prefect. Idempotent: re-running
updates the deployments in place.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drpoc_chaos.scheduling import (
    SchedulingError,
    apply_deployments,
    deployment_lines,
    load_deployment_specs,
    next_fire_times,
)

PROJECT = Path(__file__).resolve().parents[1]  # this file is the project's flows/deploy.py


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flows/deploy.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefect-file", type=Path, default=PROJECT / "flows" / "prefect.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the deployments and next fire times only")
    args = parser.parse_args(argv)
    try:
        specs = load_deployment_specs(args.prefect_file)
    except (OSError, ValueError) as exc:
        print(f"flows/deploy.py: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        for spec in specs:
            print(f"{spec.name} ({spec.entrypoint})  pool={spec.work_pool}  "
                  f"concurrency={spec.concurrency_limit} {spec.collision_strategy or ''}")
            for s in spec.schedules:
                if not s.get("cron"):
                    print(f"  {s}")
                    continue
                times = next_fire_times(s["cron"], s["timezone"], s["day_or"], n=3)
                print(f"  {s['cron']} ({s['timezone']}{'' if s['day_or'] else ', day AND weekday'}): next "
                      + ", ".join(t.isoformat() for t in times))
        return 0
    try:
        ids = apply_deployments(specs, repo=PROJECT, prefect_file=args.prefect_file)
    except SchedulingError as exc:
        print(f"flows/deploy.py: {exc}", file=sys.stderr)
        return 1
    for line in deployment_lines(specs, ids):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
