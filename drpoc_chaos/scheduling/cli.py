"""The `drpoc schedule up|down|status` and `drpoc drill now` commands: the argparse helpers
`add_schedule_parser` / `add_drill_parser` the `drpoc` CLI mounts, and the functions they run."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .server import drill_now, schedule_down, schedule_status, schedule_up
from .settings import DEFAULT_DEPLOYMENT, DEFAULT_PORT, SchedulingError


# ==============================================================================================================
# argparse helpers for the `drpoc` CLI


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cmd_schedule_up(args: argparse.Namespace) -> int:
    try:
        schedule_up(port=args.port, state_dir=args.state_dir, worker=not args.no_worker, timeout=args.timeout,
                    out=_err)
    except SchedulingError as exc:
        _err(f"drpoc schedule up: {exc}")
        return 1
    return 0


def _cmd_schedule_down(args: argparse.Namespace) -> int:
    res = schedule_down(state_dir=args.state_dir, timeout=args.timeout, out=_err)
    return 1 if "still running" in res.values() else 0


def _cmd_schedule_status(args: argparse.Namespace) -> int:
    st = schedule_status(state_dir=args.state_dir)
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print(f"server: {'running' if st['server']['running'] else 'not running'}"
              + (f" (pid {st['server']['pid']})" if st['server']['running'] else "")
              + f"   API {st['api_url']}: {'healthy' if st['healthy'] else 'NOT answering'}")
        print(f"worker: {'running' if st['worker']['running'] else 'not running'}"
              + (f" (pid {st['worker']['pid']})" if st['worker']['running'] else ""))
        for d in st["deployments"]:
            print(f"  {d['name']:<40} {', '.join(d['schedules']) or 'no schedule'}"
                  + ("  PAUSED" if d["paused"] else "")
                  + f"\n  {'':<40} next: {d['next_run'] or '-'}   last: {d['last_run'] or '-'}")
        if st.get("error"):
            print(f"error reading deployments: {st['error']}")
        if st["healthy"]:
            print(f"UI: {st['api_url'][:-4] if st['api_url'].endswith('/api') else st['api_url']}")
    return 0 if st["healthy"] and st["worker"]["running"] else 1


def _parse_param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: use KEY=VALUE (VALUE as JSON, else a string)")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _cmd_drill_now(args: argparse.Namespace) -> int:
    try:
        res = drill_now(args.deployment, api_url=args.api_url, parameters=dict(args.param or []),
                        wait=args.wait, timeout=args.timeout, state_dir=args.state_dir, out=_err)
    except SchedulingError as exc:
        _err(f"drpoc drill now: {exc}")
        return 1
    if not args.wait:
        return 0
    return {"COMPLETED": 0, "TIMEOUT": 2}.get(res["state"], 1)


def add_schedule_parser(subparsers) -> argparse.ArgumentParser:
    """`drpoc schedule up|down|status` — mount with `add_schedule_parser(sub)`; each leaf sets `func`."""
    sched = subparsers.add_parser("schedule", help="the local Prefect scheduler: server, deployments, worker",
                                  description="Run the drills on their schedules (docs/SCHEDULING.md).")
    ssub = sched.add_subparsers(dest="schedule_cmd", required=True)
    up = ssub.add_parser("up", help="start the Prefect server (127.0.0.1), apply flows/prefect.yaml, start a worker")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help="server port on 127.0.0.1 (default %(default)s)")
    up.add_argument("--no-worker", action="store_true", help="do not start a worker (workers run elsewhere)")
    up.add_argument("--timeout", type=float, default=180.0, help="bound for each wait, seconds (%(default)s)")
    up.set_defaults(func=_cmd_schedule_up)
    down = ssub.add_parser("down", help="stop the worker and the server started by `schedule up`")
    down.add_argument("--timeout", type=float, default=20.0, help="seconds before SIGKILL (%(default)s)")
    down.set_defaults(func=_cmd_schedule_down)
    status = ssub.add_parser("status", help="server, worker, deployments, next and last runs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_cmd_schedule_status)
    for p in (up, down, status):
        p.add_argument("--state-dir", type=Path, default=None,
                       help="PREFECT_HOME of the scheduler (default: <repo>/.state/prefect)")
    return sched


def add_drill_parser(subparsers) -> argparse.ArgumentParser:
    """`drpoc drill now [--deployment NAME] [--wait]` — mount with `add_drill_parser(sub)`."""
    drill = subparsers.add_parser("drill", help="run a scheduled drill now")
    dsub = drill.add_subparsers(dest="drill_cmd", required=True)
    now = dsub.add_parser("now", help="trigger a deployment at once (default: the weekly drill)")
    now.add_argument("--deployment", default=DEFAULT_DEPLOYMENT, help="FLOW/DEPLOYMENT (default %(default)s)")
    now.add_argument("--param", action="append", type=_parse_param, metavar="KEY=VALUE",
                     help='a flow parameter, VALUE as JSON: --param \'objectives={"objective_rto_seconds": 30}\'')
    now.add_argument("--wait", action="store_true", help="wait for the result (exit 0 passed, 1 not, 2 timeout)")
    now.add_argument("--timeout", type=float, default=900.0, help="bound of --wait, seconds (%(default)s)")
    now.add_argument("--api-url", default=None, help="Prefect API (default: the local scheduler's)")
    now.add_argument("--state-dir", type=Path, default=None, help=argparse.SUPPRESS)
    now.set_defaults(func=_cmd_drill_now)
    return drill
