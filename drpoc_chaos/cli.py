"""`drpoc` — the command line: the lab, manual recovery, and the evidence (review / verify)."""
from __future__ import annotations

import argparse
import json
import os
import sys

from .lab.topology import LAB_HOST_NAMES, MYSQL_DEFAULT_KNOBS, LabSettings, ReplicaKnobs


def _print(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _lab_up(args: argparse.Namespace) -> int:
    from .lab.lifecycle import Lab
    knobs = ReplicaKnobs(net_timeout=args.net_timeout, heartbeat_period=args.heartbeat_period,
                         connect_retry=args.connect_retry)
    if args.mysql_defaults:
        knobs = MYSQL_DEFAULT_KNOBS
    result = Lab(progress=_print).up(LabSettings(knobs=knobs, esp_mode=args.esp))
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
             + (f"   healthy: {'yes' if st['healthy'] else 'NO'}" if st["up"] else "")]
    if st.get("knobs"):
        k = st["knobs"]
        lines.append(f"replica knobs: net timeout {k['net_timeout']}s, heartbeat {k['heartbeat_period']}s, "
                     f"connect retry {k['connect_retry']}s")
    lines.append("")
    lines.append(f"{'HOST':<12} {'NAMESPACE':<10} {'DAEMONS':<34} STATE")
    for host, ok in st["hosts"].items():
        daemons = ", ".join(f"{d.split('@')[0]}:{'up' if alive else 'DOWN'}"
                            for d, alive in st["daemons"].items() if d.endswith("@" + host))
        state = ""
        if host in st["tunnels"]:
            t = st["tunnels"][host]
            state = f"tunnel {t['state']}" + (f" ({t['sas']})" if t.get("sas") else "") + \
                    (f" error: {t['error']}" if t.get("error") else "")
        if host == "onprem-db" and st["replica"]:
            r = st["replica"]
            state = f"replica IO={r.get('io')} SQL={r.get('sql')} behind={r.get('seconds_behind')}"
            if r.get("last_io_error"):
                state += f" last IO error: {r['last_io_error'][:80]}"
        if host == "aws-db" and st["daemons"].get("mariadbd@aws-db"):
            state = "source"
        lines.append(f"{host:<12} {'yes' if ok else 'missing':<10} {daemons or '-':<34} {state}")
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
    if not os.path.exists(f"/run/netns/{args.host}"):
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
    out = seed(load_inventory(args.inventory), args.rows, schema=args.schema, say=_print)
    print(json.dumps(out) if args.json else f"{out['schema']}: {out['rows']:,} rows ({out['tables']})")
    return 0


def _recover(args: argparse.Namespace) -> int:
    from .drill.recover import recover
    from .lab.faults import undo_lab_faults
    out = recover(args.inventory, timeout=args.timeout, release_lock=not args.keep_lock,
                  archive_dir=args.archive_dir, say=lambda m: print(m, flush=True),
                  undo_emulated_faults=undo_lab_faults)
    return 0 if out["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drpoc", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

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
    up.set_defaults(func=_lab_up)
    down = lsub.add_parser("down", help="stop every lab process and remove namespaces, mounts and links")
    down.set_defaults(func=_lab_down)
    status = lsub.add_parser("status", help="hosts, daemons, tunnel and replica state (exit 1 when not healthy)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_lab_status)
    ex = lsub.add_parser("exec", help="run a command on a lab host, as an operator logged into it would",
                         description="Example: drpoc lab exec aws-vpn -- ipsec statusall")
    ex.add_argument("host", choices=LAB_HOST_NAMES)
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=_lab_exec)
    sd = lsub.add_parser("seed-data", help="(re)create a schema of realistic tables on the source (for `drpoc parity`)")
    sd.add_argument("--rows", type=int, default=100_000, help="rows over all its tables (default %(default)s)")
    sd.add_argument("--schema", default="drpoc_seed", help="schema to drop and recreate (default %(default)s)")
    sd.add_argument("--inventory", help="inventory file (default: $DRPOC_INVENTORY, then the lab's)")
    sd.add_argument("--json", action="store_true", help="machine-readable output")
    sd.set_defaults(func=_lab_seed_data)

    rec = sub.add_parser("recover", help="restore the tunnel (seed order) and the replica after a drill went wrong; "
                                         "disarms the dead-man's switch and releases the drill lock; re-runnable")
    rec.add_argument("--inventory", help="inventory file (default: $DRPOC_INVENTORY, then the lab's)")
    rec.add_argument("--timeout", type=float, default=90, help="seconds to get the tunnel back (default 90)")
    rec.add_argument("--keep-lock", action="store_true", help="leave the drill lock in place")
    rec.add_argument("--archive-dir", help="journal archive where drills that died are recorded (default: "
                                           "$DRPOC_ARCHIVE_DIR, then ./journal)")
    rec.set_defaults(func=_recover)

    from .parity.cli import add_parser as add_parity_parser
    add_parity_parser(sub)
    from .evidence.cli import add_review_parser, add_verify_parser
    add_review_parser(sub)
    add_verify_parser(sub)
    from .scheduling import add_drill_parser, add_schedule_parser
    add_schedule_parser(sub)
    add_drill_parser(sub)
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
    from .remote import RemoteError
    try:
        return args.func(args)
    except (LabError, InventoryError, RemoteError, ActivityFailed, DbError) as exc:
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
