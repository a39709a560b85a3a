"""The `drpoc schedule up|down|status|alerts|heads` and `drpoc drill now` commands: the argparse helpers
`add_schedule_parser` / `add_drill_parser` the `drpoc` CLI mounts, and the functions they run. Every Prefect API call
they make goes through Prefect's client, with its retries (deployments.client_retry_settings)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .alerts import apply_alerts
from .deployments import client_retry_settings
from .server import (
    SchedulerPaths,
    api_healthy,
    api_url_for,
    default_state_dir,
    drill_now,
    read_record,
    schedule_down,
    schedule_status,
    schedule_up,
)
from .settings import DEFAULT_ARCHIVE_DIR, DEFAULT_DEPLOYMENT, DEFAULT_PORT, SchedulingError, project_root

# ==============================================================================================================
# argparse helpers for the `drpoc` CLI


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cmd_schedule_up(args: argparse.Namespace) -> int:
    try:
        res = schedule_up(port=args.port, state_dir=args.state_dir, worker=not args.no_worker, timeout=args.timeout,
                          alerts=not args.no_alerts, alerts_block=args.alerts_block, out=_err)
    except SchedulingError as exc:
        _err(f"drpoc schedule up: {exc}")
        return 1
    if res.get("alerts", {}).get("status") == "error":
        _err(f"drpoc schedule up: the scheduler runs, but its alerts were not applied: {res['alerts']['message']}")
        return 1
    return 0


def _api_url(args: argparse.Namespace) -> str:
    """--api-url, else the local scheduler's server, else PREFECT_API_URL, else 127.0.0.1:4200."""
    if getattr(args, "api_url", None):
        return args.api_url
    server = read_record(SchedulerPaths(Path(args.state_dir) if args.state_dir else default_state_dir()), "server")
    return (server or {}).get("api_url") or os.environ.get("PREFECT_API_URL") or api_url_for(DEFAULT_PORT)


def _cmd_schedule_alerts(args: argparse.Namespace) -> int:
    api_url = _api_url(args)
    if not api_healthy(api_url):
        _err(f"drpoc schedule alerts: no Prefect API at {api_url} (give --api-url, or `drpoc schedule up`)")
        return 1
    import prefect.settings as ps
    try:
        with ps.temporary_settings(updates=client_retry_settings()):   # Prefect's client retries, 504 included
            res = apply_alerts(automations_file=args.file, prefect_file=args.prefect_file, block=args.block,
                               webhook_url=args.webhook_url, dry_run=args.dry_run, api_url=api_url, out=_err)
    except SchedulingError as exc:
        _err(f"drpoc schedule alerts: {exc}")
        return 1
    if args.json:
        print(json.dumps(res, indent=2))
    return 3 if res["status"] == "skipped" else 0


def _cmd_schedule_heads(args: argparse.Namespace) -> int:
    import prefect.settings as ps

    from .heads import heads_jsonl, recorded_heads
    api_url = _api_url(args)
    if not api_healthy(api_url):
        _err(f"drpoc schedule heads: no Prefect API at {api_url} (give --api-url, or `drpoc schedule up`)")
        return 1
    archive = None if args.all else (args.archive or project_root() / DEFAULT_ARCHIVE_DIR)
    with ps.temporary_settings(updates={ps.PREFECT_API_URL: api_url, **client_retry_settings()}):
        heads = recorded_heads(archive)
    text = heads_jsonl(heads)
    if args.out in (None, "-"):
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    where = "every archive" if archive is None else str(Path(archive).resolve())
    _err(f"{len(heads)} recorded ledger head(s) of {where}"
         + (f" written to {args.out}" if args.out not in (None, "-") else "")
         + (f"; check them with `drpoc verify {archive} --heads {args.out}`" if heads and archive is not None
            and args.out not in (None, "-") else ""))
    return 0 if heads else 2


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
        if st["healthy"] and st.get("alerts") is not None:
            alerts = st["alerts"]
            print(f"alerts: {len(alerts)} drpoc automation(s)" if alerts else
                  "alerts: NONE (no notification block? see `drpoc schedule alerts`)")
            for a in alerts:
                print(f"  {a['name']}" + ("" if a["enabled"] else "  DISABLED"))
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
    """`drpoc schedule up|down|status|alerts|heads` — mount with `add_schedule_parser(sub)`; each leaf sets `func`."""
    sched = subparsers.add_parser("schedule", help="the local Prefect scheduler: server, deployments, worker",
                                  description="Run the drills on their schedules (docs/SCHEDULING.md).")
    ssub = sched.add_subparsers(dest="schedule_cmd", required=True)
    up = ssub.add_parser("up", help="start the Prefect server (127.0.0.1), apply flows/prefect.yaml and the alerts "
                                        "of flows/automations.yaml, start a worker")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help="server port on 127.0.0.1 (default %(default)s)")
    up.add_argument("--no-worker", action="store_true", help="do not start a worker (workers run elsewhere)")
    up.add_argument("--timeout", type=float, default=180.0, help="bound for each wait, seconds (%(default)s)")
    up.add_argument("--alerts-block", default=None, metavar="NAME",
                    help="notification block the alerts use (default: notify.block of flows/automations.yaml, "
                         "drpoc-alerts); when it does not exist the alerts are skipped, with how to create it")
    up.add_argument("--no-alerts", action="store_true", help="do not apply flows/automations.yaml")
    up.set_defaults(func=_cmd_schedule_up)
    down = ssub.add_parser("down", help="stop the worker and the server started by `schedule up`")
    down.add_argument("--timeout", type=float, default=20.0, help="seconds before SIGKILL (%(default)s)")
    down.set_defaults(func=_cmd_schedule_down)
    status = ssub.add_parser("status", help="server, worker, deployments, next and last runs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_cmd_schedule_status)
    alerts = ssub.add_parser(
        "alerts", help="apply the alerting automations of flows/automations.yaml (idempotent)",
        description="Apply the automations of flows/automations.yaml to a Prefect API (the local scheduler's, "
                    "--api-url, or PREFECT_API_URL): failed drill or check, no completed run of a scheduled "
                    "deployment within its interval + grace, work pool not ready; each notifies through a "
                    "notification block. Exit 0 applied, 3 skipped (no such block), 1 error.")
    alerts.add_argument("--api-url", default=None, help="Prefect API, e.g. a shared server's https://…/api")
    alerts.add_argument("--block", default=None, metavar="NAME|TYPE/NAME",
                        help="notification block (default: notify.block of the file, drpoc-alerts)")
    alerts.add_argument("--webhook-url", default=None, metavar="URL",
                        help="first create or update a Custom Webhook block of that name posting JSON "
                             "{subject, body, text} to URL")
    alerts.add_argument("--file", type=Path, default=None,
                        help="automations file (default: the project's flows/automations.yaml)")
    alerts.add_argument("--prefect-file", type=Path, default=None,
                        help="deployments file (default: the project's flows/prefect.yaml)")
    alerts.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    alerts.add_argument("--json", action="store_true", help="print the result as JSON")
    alerts.set_defaults(func=_cmd_schedule_alerts)
    heads = ssub.add_parser(
        "heads", help="export the ledger heads recorded after each drill (for `drpoc verify --heads`)",
        description="Write the archive ledger heads the dr-drill flow recorded in Prefect Variables as JSON lines "
                    '{"seq", "entry_hash", "recorded_at", "archive"}, oldest first. Exit 2 when none is recorded.')
    heads.add_argument("--out", default="-", metavar="FILE", help="output file (default: standard output)")
    heads.add_argument("--archive", type=Path, default=None,
                       help=f"archive directory the drills wrote to (default: the project's {DEFAULT_ARCHIVE_DIR}/)")
    heads.add_argument("--all", action="store_true", help="the heads of every archive")
    heads.add_argument("--api-url", default=None, help="Prefect API (default: the local scheduler's)")
    heads.set_defaults(func=_cmd_schedule_heads)
    for p in (up, down, status, alerts, heads):
        p.add_argument("--state-dir", type=Path, default=None,
                       help="PREFECT_HOME of the scheduler (default: <project>/.state/prefect)")
    return sched


def _cmd_campaign_workers(args: argparse.Namespace) -> int:
    from ..inventory import InventoryError, load_fleet
    from .campaign import pair_pool
    from .server import start_pool_worker
    try:
        fleet = load_fleet(args.inventory)
    except InventoryError as exc:
        _err(f"drpoc campaign workers: {exc}")
        return 2
    api_url = _api_url(args)
    if not api_healthy(api_url):
        _err(f"drpoc campaign workers: no Prefect API at {api_url} (give --api-url, or `drpoc schedule up`)")
        return 1
    pools = sorted({pair_pool(fleet, p) for p in fleet.pairs})
    for pool in pools:
        try:
            rec = start_pool_worker(pool, api_url=api_url, state_dir=args.state_dir)
        except SchedulingError as exc:
            _err(f"drpoc campaign workers: {exc}")
            return 1
        _err(f"worker of pool {pool} online (pid {rec['pid']}); `drpoc schedule down` stops it")
    return 0


def _cmd_campaign_run(args: argparse.Namespace) -> int:
    import prefect.settings as ps

    from ..core.campaign import CampaignError, choose
    from ..inventory import InventoryError, load_fleet
    from .campaign import check_max_parallel
    from .settings import project_root
    selection = args.selection if "," not in args.selection or ":" in args.selection else f"list:{args.selection}"
    try:  # bad input is refused here, before any server or site is touched
        choose(selection, list(load_fleet(args.inventory).pairs), seed=0)
        check_max_parallel(args.max_parallel)
    except (CampaignError, InventoryError) as exc:
        _err(f"drpoc campaign run: {exc}")
        return 2
    api_url = _api_url(args)
    if not api_healthy(api_url):
        _err(f"drpoc campaign run: no Prefect API at {api_url} (give --api-url, or `drpoc schedule up`): the "
             "drills run on the workers of that server")
        return 1
    flows = project_root(None) / "flows"
    if str(flows) not in sys.path:
        sys.path.insert(0, str(flows))
    try:
        from campaign import dr_campaign  # type: ignore[import-not-found]  # flows/campaign.py of the project
    except ImportError as exc:
        _err(f"drpoc campaign run: cannot import flows/campaign.py from {flows} ({exc}): run it from the project")
        return 2
    with ps.temporary_settings(updates={ps.PREFECT_API_URL: api_url}):
        state = dr_campaign(scenario=args.scenario, inventory=args.inventory, selection=selection,
                            max_parallel=args.max_parallel, halt_on_failure=not args.no_halt,
                            health_check=not args.no_health_check, seed=args.seed,
                            archive_dir=args.archive_dir, return_state=True)
    if isinstance(state.message, str) and state.message:
        _err(state.message)
    return 0 if state.is_completed() else 1


def add_campaign_parser(subparsers) -> argparse.ArgumentParser:
    """`drpoc campaign run|workers` (docs/FLEET.md)."""
    camp = subparsers.add_parser("campaign", help="drill a selection of a fleet's pairs (the dr-campaign flow)",
                                 description="docs/FLEET.md")
    csub = camp.add_subparsers(dest="campaign_cmd", required=True)
    run = csub.add_parser("run", help="run the dr-campaign flow now against a Prefect server (exit 0: every chosen "
                                      "pair passed; 1: not; 2: bad arguments)")
    run.add_argument("--scenario", default="experiments/vpn_outage.yaml", help="experiment (%(default)s)")
    run.add_argument("--inventory", default=None, help="fleet inventory (default: $DRPOC_INVENTORY, the lab's)")
    run.add_argument("--selection", default="all", help="all | count:N | percent:P | list:a,b (%(default)s)")
    run.add_argument("--max-parallel", type=int, default=1, help="drills at once (%(default)s)")
    run.add_argument("--no-halt", action="store_true", help="go on after a drill that did not pass")
    run.add_argument("--no-health-check", action="store_true", help="no fleet health probe before each launch")
    run.add_argument("--seed", type=int, default=None, help="seed of count/percent picks (recorded)")
    run.add_argument("--archive-dir", default=DEFAULT_ARCHIVE_DIR, help="journal archive (%(default)s)")
    run.set_defaults(func=_cmd_campaign_run)
    workers = csub.add_parser("workers", help="start a process worker for each work pool of the inventory's sites")
    workers.add_argument("--inventory", default=None, help="fleet inventory (default: $DRPOC_INVENTORY, the lab's)")
    workers.set_defaults(func=_cmd_campaign_workers)
    for p in (run, workers):
        p.add_argument("--api-url", default=None, help="Prefect API (default: the local scheduler's)")
        p.add_argument("--state-dir", type=Path, default=None, help=argparse.SUPPRESS)
    return camp


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
