"""`drpoc` — the command line: a new project (init), the lab, manual recovery, the evidence (review / verify) and
the schedules. Commands work in the project found from the working directory (or --project-dir)."""
from __future__ import annotations

import argparse
import json
import os
import sys

from .lab.topology import MAX_SITES, MYSQL_DEFAULT_KNOBS, LabSettings, ReplicaKnobs, lab_host_name


def _print(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _lab_up(args: argparse.Namespace) -> int:
    from .lab.lifecycle import Lab
    knobs = ReplicaKnobs(net_timeout=args.net_timeout, heartbeat_period=args.heartbeat_period,
                         connect_retry=args.connect_retry)
    if args.mysql_defaults:
        knobs = MYSQL_DEFAULT_KNOBS
    if not 1 <= args.sites <= MAX_SITES:
        _print(f"drpoc lab up: --sites {args.sites}: give 1 to {MAX_SITES} on-prem sites")
        return 2
    result = Lab(progress=_print).up(LabSettings(knobs=knobs, esp_mode=args.esp, ipsec=args.ipsec, sites=args.sites))
    if not result["healthy"]:
        _print("lab is up but not healthy: " + "; ".join(result["problems"]))
        return 1
    return 0


def _lab_down(args: argparse.Namespace) -> int:
    from .lab.lifecycle import Lab
    Lab(progress=_print).down()
    return 0


def _fmt_status(st: dict) -> str:
    lines = [f"lab: {'up' if st['up'] else 'down'}"
             + (f"   ESP: {st['esp_mode']}" if st.get("esp_mode") else "")
             + (f"   strongSwan control: {st['ipsec_mode']}" if st.get("ipsec_mode") else "")
             + (f"   healthy: {'yes' if st['healthy'] else 'NO'}" if st["up"] else "")]
    if st.get("knobs"):
        k = st["knobs"]
        lines.append(f"replica knobs: net timeout {k['net_timeout']}s, heartbeat {k['heartbeat_period']}s, "
                     f"connect retry {k['connect_retry']}s")
    lines.append("")
    lines.append(f"{'HOST':<13} {'NAMESPACE':<10} {'DAEMONS':<34} STATE")
    for host, ok in st["hosts"].items():
        daemons = ", ".join(f"{d.split('@')[0]}:{'up' if alive else 'DOWN'}"
                            for d, alive in st["daemons"].items() if d.endswith("@" + host))
        state = ""
        tunnels = [(k, t) for k, t in st["tunnels"].items() if k == host or k.startswith(host + " ")]
        if tunnels:
            state = "; ".join(
                (f"{k.split(' ', 1)[1]} " if " " in k else "") + f"tunnel {t['state']}"
                + (f" ({t['sas']})" if t.get("sas") else "") + (f" error: {t['error']}" if t.get("error") else "")
                for k, t in tunnels)
        replicas = st.get("replicas") or {"onprem-db": st["replica"]}
        if replicas.get(host):
            r = replicas[host]
            state = f"replica IO={r.get('io')} SQL={r.get('sql')} behind={r.get('seconds_behind')}"
            if r.get("last_io_error"):
                state += f" last IO error: {r['last_io_error'][:80]}"
        if host == "aws-db" and st["daemons"].get("mariadbd@aws-db"):
            state = "source"
        lines.append(f"{host:<13} {'yes' if ok else 'missing':<10} {daemons or '-':<34} {state}")
    pub = st["daemons"].get("publisher@127.0.0.1")
    lines.append("")
    lines.append("published on 127.0.0.1" + ("" if pub else " (publisher NOT running)") + ": "
                 + ", ".join(f"{p['host']} {p['service']} :{p['port']}" for p in st["published"]))
    if st.get("wan_counters"):
        lines.append("WAN packets: " + ", ".join(f"{k} {v['packets']}" for k, v in st["wan_counters"].items()))
    if st.get("inventory"):
        lines.append(f"inventory: {st['inventory']}")
    if st["problems"] and st["up"]:
        lines.append("problems: " + "; ".join(st["problems"]))
    return "\n".join(lines)


def _lab_status(args: argparse.Namespace) -> int:
    from .lab.lifecycle import Lab
    st = Lab().status()
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print(_fmt_status(st))
    return 0 if st["up"] and st["healthy"] else 1


def _lab_exec(args: argparse.Namespace) -> int:
    from .lab.topology import enter_command
    cmd = args.command
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        _print("drpoc lab exec: give a command after the host, e.g. `drpoc lab exec aws-vpn -- ipsec statusall`")
        return 2
    if not lab_host_name(args.host) or not os.path.exists(f"/run/netns/{args.host}"):
        _print(f"drpoc lab exec: lab host {args.host} does not exist; is the lab up? (`drpoc lab up`)")
        return 2
    full = enter_command(args.host) + cmd
    os.execvp(full[0], full)
    return 127  # not reached


def _lab_seed_data(args: argparse.Namespace) -> int:
    from .inventory import load_inventory
    from .lab.seed_data import seed
    if args.rows < 4:
        _print("drpoc lab seed-data: --rows must be at least 4 (one row per table)")
        return 2
    out = seed(load_inventory(args.inventory, pair=args.pair), args.rows, schema=args.schema, say=_print)
    print(json.dumps(out) if args.json else f"{out['schema']}: {out['rows']:,} rows ({out['tables']})")
    return 0


def _recover(args: argparse.Namespace) -> int:
    from .drill.recover import recover

    # with --json the progress goes to stderr and stdout carries only the result (drpoc-recover/1)
    from .inventory import load_fleet
    from .lab.faults import is_lab, return_lost_source, undo_lab_faults
    say = _print if args.json else (lambda m: print(m, flush=True))
    # a fleet without --pair: every pair, one after the other (an orchestrator that died mid-campaign may have left
    # several pairs half-drilled); each pair's recovery is the one-pair recovery
    pairs = [args.pair] if args.pair else list(load_fleet(args.inventory).pairs)
    results = {}
    for pair in pairs:
        if len(pairs) > 1:
            say(f"--- pair {pair}")
        results[pair] = recover(args.inventory, timeout=args.timeout, release_lock=not args.keep_lock,
                                archive_dir=args.archive_dir, say=say, undo_emulated_faults=undo_lab_faults,
                                bring_back_source=lambda inv: return_lost_source(inv) if is_lab(inv) else None,
                                pair=pair if len(pairs) > 1 or args.pair else None)
    ok = all(r["ok"] for r in results.values())
    out = results[pairs[0]] if len(pairs) == 1 else {"ok": ok, "pairs": results}
    if args.json:
        print(json.dumps({"schema": "drpoc-recover/1", **out}, indent=2, default=str))
    return 0 if ok else 1


def _gateway_helper(args: argparse.Namespace) -> int:
    from .services.gateway_helper import HELPER_PATH, SUDOERS_RULE, script_text
    if args.sudoers:
        from .core.identifiers import login_problem
        problem = login_problem(args.sudoers)
        if problem:
            _print(f"drpoc gateway-helper: --sudoers {args.sudoers[:40]!r} {problem}")
            return 2
        path = args.path or HELPER_PATH
        if not path.startswith("/") or any(c in path for c in " \t\n,:=\\*?[]"):
            _print("drpoc gateway-helper: --path must be an absolute path without spaces or sudoers specials")
            return 2
        print(SUDOERS_RULE.format(user=args.sudoers, path=path))
    else:
        sys.stdout.write(script_text())
    return 0


def _init(args: argparse.Namespace) -> int:
    from .project import init_project
    written = init_project(args.directory, force=args.force)
    root = os.path.abspath(args.directory)
    for path in written:
        print(f"wrote {path}")
    print(f"wrote {os.path.join(root, 'journal')}/ (the archive: journals and their ledger)")
    print(f"\nNext: cd {root}; edit inventory.yaml for your sites and `export DRPOC_INVENTORY=$PWD/inventory.yaml` "
          "(without it the drills use the lab's inventory); `chaos run experiments/vpn_outage.yaml`; "
          "`drpoc schedule up`.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(prog="drpoc", description=__doc__)
    parser.add_argument("--version", action="version", version=f"drpoc-chaos {__version__}")
    parser.add_argument("--project-dir", metavar="DIR",
                        help="the project (experiments/, flows/prefect.yaml, journal/) to work in (default: the "
                             "working directory or the first parent that is one)")
    sub = parser.add_subparsers(dest="cmd", required=True)

    init = sub.add_parser("init", help="write a ready project into DIR: experiments, flows/prefect.yaml, an "
                                       "inventory template and an empty journal/",
                          description="The files are yours to edit; drpoc never writes them again (an existing "
                                      "file is refused unless --force).")
    init.add_argument("directory", metavar="DIR")
    init.add_argument("--force", action="store_true", help="replace files that exist with the shipped ones")
    init.set_defaults(func=_init)

    lab = sub.add_parser("lab", help="the two-site lab on this machine (network namespaces, root only)")
    lsub = lab.add_subparsers(dest="lab_cmd", required=True)
    up = lsub.add_parser("up", help="build the lab, or check it and do nothing if it is already up")
    up.add_argument("--net-timeout", type=int, default=ReplicaKnobs.net_timeout,
                    help="replica net timeout in seconds (MySQL default 60; lab default %(default)s)")
    up.add_argument("--heartbeat-period", type=float, default=ReplicaKnobs.heartbeat_period,
                    help="MASTER_HEARTBEAT_PERIOD in seconds (MySQL default 30; lab default %(default)s)")
    up.add_argument("--connect-retry", type=int, default=ReplicaKnobs.connect_retry,
                    help="MASTER_CONNECT_RETRY in seconds (MySQL default 60; lab default %(default)s)")
    up.add_argument("--mysql-defaults", action="store_true",
                    help="use MySQL's production defaults 60/30/60 s (a drill then takes minutes)")
    up.add_argument("--esp", choices=["auto", "kernel", "libipsec"], default="auto",
                    help="ESP data path: detected by default (kernel ESP when the kernel has it)")
    up.add_argument("--sites", type=int, default=1, metavar="N",
                    help="on-prem sites around the AWS hub (default 1: the seed's two-site lab); N > 1 builds a "
                         "fleet: spoke k is onprem<k> on 192.168.(63+k).0/24, and the inventory is version 2")
    up.add_argument("--ipsec", choices=["ipsec", "swanctl"], default="ipsec",
                    help="how the gateways run strongSwan: ipsec (starter + ipsec.conf, the seed's `ipsec` commands; "
                         "default) or swanctl (charon + swanctl.conf over vici, as on strongSwan 6)")
    up.set_defaults(func=_lab_up)
    down = lsub.add_parser("down", help="stop every lab process and remove namespaces, mounts and links")
    down.set_defaults(func=_lab_down)
    status = lsub.add_parser("status", help="hosts, daemons, tunnel and replica state (exit 1 when not healthy)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_lab_status)
    ex = lsub.add_parser("exec", help="run a command on a lab host, as an operator logged into it would",
                         description="Example: drpoc lab exec aws-vpn -- ipsec statusall")
    ex.add_argument("host", help="a lab host: wan, aws-vpn, aws-db, onprem-vpn, onprem-db (a fleet lab's spoke k: "
                                 "onprem<k>-vpn, onprem<k>-db)")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=_lab_exec)
    sd = lsub.add_parser("seed-data", help="(re)create a schema of realistic tables on the source (for `drpoc parity`)")
    sd.add_argument("--rows", type=int, default=100_000, help="rows over all its tables (default %(default)s)")
    sd.add_argument("--schema", default="drpoc_seed", help="schema to drop and recreate (default %(default)s)")
    sd.add_argument("--inventory", help="inventory file (default: $DRPOC_INVENTORY, then the lab's)")
    sd.add_argument("--pair", default=os.environ.get("DRPOC_PAIR") or None,
                    help="the pair of a fleet inventory whose source gets the data (default: $DRPOC_PAIR)")
    sd.add_argument("--json", action="store_true", help="machine-readable output")
    sd.set_defaults(func=_lab_seed_data)

    rec = sub.add_parser("recover", help="restore the tunnel (seed order) and the replica after a drill went wrong, "
                                         "finishing an interrupted failover (back to the original primary); "
                                         "disarms the dead-man's switch and releases the drill lock; re-runnable")
    rec.add_argument("--inventory", help="inventory file (default: $DRPOC_INVENTORY, then the lab's)")
    rec.add_argument("--pair", default=os.environ.get("DRPOC_PAIR") or None,
                     help="the pair of a fleet inventory to recover (default: $DRPOC_PAIR, else every pair, one "
                          "after the other)")
    rec.add_argument("--timeout", type=float, default=90, help="seconds to get the tunnel back (default 90)")
    rec.add_argument("--keep-lock", action="store_true", help="leave the drill lock in place")
    rec.add_argument("--archive-dir", help="journal archive where drills that died are recorded (default: "
                                           "$DRPOC_ARCHIVE_DIR, then ./journal)")
    rec.add_argument("--json", action="store_true",
                     help="print the result as one JSON object (drpoc-recover/1); progress goes to stderr")
    rec.set_defaults(func=_recover)

    gh = sub.add_parser("gateway-helper", help="print the gateway helper script (install it root-owned at "
                                               "/usr/local/sbin/drpoc-gw on each gateway; docs/REAL_HOSTS.md)")
    gh.add_argument("--sudoers", metavar="USER", help="print the sudoers line for USER instead of the script")
    gh.add_argument("--path", help="where the helper is installed (default /usr/local/sbin/drpoc-gw)")
    gh.set_defaults(func=_gateway_helper)

    from .parity.cli import add_parser as add_parity_parser
    add_parity_parser(sub)
    from .evidence.cli import add_review_parser, add_verify_parser
    add_review_parser(sub)
    add_verify_parser(sub)
    from .scheduling import add_drill_parser, add_schedule_parser
    from .scheduling.cli import add_campaign_parser
    add_schedule_parser(sub)
    add_drill_parser(sub)
    add_campaign_parser(sub)
    return parser


def _parity_parser() -> argparse.ArgumentParser:
    """Only `drpoc parity`: a timed command (benchmarks/parity_vs_pt_table_checksum.py) that starts ~0.1 s sooner
    without the scheduler and the evidence reader."""
    from .parity.cli import add_parser as add_parity_parser
    parser = argparse.ArgumentParser(prog="drpoc", description=__doc__)
    add_parity_parser(parser.add_subparsers(dest="cmd", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parity_parser() if argv[:1] == ["parity"] else build_parser()
    args = parser.parse_args(argv)
    from chaoslib.exceptions import ActivityFailed

    from .db import DbError
    from .inventory import InventoryError
    from .lab.system import LabError
    from .project import PROJECT_DIR_ENV, ProjectError
    from .remote import RemoteError
    from .services.errors import StepFailed
    if getattr(args, "project_dir", None):  # the parity-only parser has no global options
        os.environ[PROJECT_DIR_ENV] = os.path.abspath(args.project_dir)
    try:
        return args.func(args)
    except (LabError, InventoryError, RemoteError, ActivityFailed, ProjectError, StepFailed, DbError) as exc:
        _print(f"drpoc: {exc}")
        return 2 if args.cmd == "parity" else 1
    except KeyboardInterrupt:
        _print("drpoc: interrupted")
        return 130
    except BrokenPipeError:  # `drpoc lab status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
