"""`drpoc parity`: compare whole schemas on the inventory's source and replica. Exit 0 equal, 1 a difference, 2 could
not compare everything (docs/PARITY.md)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..core.parity import ParityError, Selection
from ..inventory import load_inventory
from ..services import parity
from ..services.errors import StepFailed


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "parity", help="compare the data of whole schemas on source and replica, at the same replication position",
        description="Chunked checksums on both servers in parallel; differing chunks narrowed to the keys of the "
                    "rows that differ (never their values). Read-only on both servers. Exit 0: equal; 1: a "
                    "difference; 2: could not compare everything.")
    p.add_argument("--inventory", help="inventory file (default: $DRPOC_INVENTORY, then the lab's)")
    p.add_argument("--pair", default=os.environ.get("DRPOC_PAIR") or None,
                   help="the pair of a fleet inventory to compare (default: $DRPOC_PAIR, else its only pair)")
    p.add_argument("--tables", action="append", metavar="PATTERN",
                   help="schema.table shell patterns, repeatable or comma-separated (default: every non-system "
                        "schema); a pattern without a dot names a schema")
    p.add_argument("--exclude", action="append", metavar="PATTERN", help="schema.table patterns to leave out")
    p.add_argument("--workers", type=int, default=4, help="parallel chunk comparisons (default %(default)s)")
    p.add_argument("--chunk-time", type=float, default=0.25,
                   help="seconds one chunk's checksum should take; chunk sizes adapt (default %(default)s)")
    p.add_argument("--max-lag", type=float, default=10.0,
                   help="pause while the replica is more than this many seconds behind (default %(default)s)")
    p.add_argument("--max-threads-running", type=int, default=25,
                   help="pause while the source has more threads running (default %(default)s)")
    p.add_argument("--max-pause", type=float, default=300.0,
                   help="give up (exit 2, checkpoint kept) after pausing this long in one go (default %(default)s)")
    p.add_argument("--max-seconds", type=float, help="stop cleanly after this long (exit 2; continue with --resume)")
    p.add_argument("--wait-timeout", type=float, default=30.0,
                   help="seconds the replica may take to reach the source's position, per chunk (default "
                        "%(default)s)")
    p.add_argument("--max-rounds", type=int, default=5,
                   help="re-checks of a chunk that live writes keep changing before it is reported unsettled "
                        "(default %(default)s)")
    p.add_argument("--checkpoint", help="checkpoint file (default: ~/.cache/drpoc/parity/<inventory name>.json)")
    p.add_argument("--no-checkpoint", action="store_true", help="keep no checkpoint")
    p.add_argument("--resume", action="store_true", help="continue an interrupted comparison from its checkpoint")
    p.add_argument("--json", action="store_true", help="the full result as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on the terminal")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> str | None:
    for name in ("workers", "max_rounds", "max_threads_running"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    for name in ("chunk_time", "max_lag", "max_pause", "wait_timeout", "max_seconds"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            return f"--{name.replace('_', '-')} must be a positive number of seconds"
    if args.no_checkpoint and args.resume:
        return "--resume needs a checkpoint: drop --no-checkpoint"
    return None


def _text(result: dict) -> str:
    lines = []
    for t in result["tables"]:
        head = f"{t['table']:<40} {t['status'].upper():<10}"
        if "rows" in t:
            head += f" {t['rows']:>10,} rows"
        lines.append(head + (f"  ({t['note']})" if t.get("note") else ""))
        for kind, what in (("missing", "missing on the replica"), ("extra", "extra on the replica"),
                           ("changed", "changed")):
            n = (t.get("counts") or {}).get(kind, 0)
            if n and t.get(kind):
                shown = ", ".join(t[kind][:20]) + (" …" if n > 20 else "")
                lines.append(f"    {n} {what}: key {', '.join(t.get('key') or [])} = {shown}")
        if t.get("unsettled_chunks"):
            lines.append(f"    {t['unsettled_chunks']} chunk(s) kept changing under live writes: not compared")
        if t.get("error"):
            lines.append(f"    error: {t['error']}")
    lines.append(f"verdict: {result['verdict'].upper()} — {result['rows']:,} rows in {result['seconds']:.2f}s "
                 f"({result['mode']} mode, {result['workers']} workers"
                 + (f", paused {result['paused_seconds']:.1f}s" if result["paused_seconds"] else "") + ")")
    if result.get("incomplete"):
        lines.append(f"incomplete: {result['incomplete']}")
    if result.get("checkpoint"):
        lines.append(f"checkpoint: {result['checkpoint']} (continue with --resume)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        _say(f"drpoc parity: {problem}")
        return 2
    try:
        selection = Selection.parse(args.tables, args.exclude)
    except ParityError as exc:
        _say(f"drpoc parity: {exc}")
        return 2
    inv = load_inventory(args.inventory, pair=args.pair)
    checkpoint = None if args.no_checkpoint else \
        (Path(args.checkpoint).expanduser() if args.checkpoint else parity.default_checkpoint(inv))
    if args.resume and checkpoint is not None and not checkpoint.exists():
        _say(f"drpoc parity: --resume: no checkpoint at {checkpoint}; starting from the beginning")
    options = parity.Options(selection=selection, workers=args.workers, chunk_seconds=args.chunk_time,
                             max_lag=args.max_lag, max_threads_running=args.max_threads_running,
                             max_pause_seconds=args.max_pause, max_seconds=args.max_seconds,
                             wait_timeout=args.wait_timeout, max_rounds=args.max_rounds, checkpoint=checkpoint,
                             resume=args.resume, progress=None if args.quiet else _say)
    try:
        result = parity.compare_tables(inv, None, options)
    except (ParityError, StepFailed) as exc:
        _say(f"drpoc parity: {exc}")
        return 2
    except KeyboardInterrupt:
        _say("drpoc parity: interrupted" + (f"; continue with --resume (checkpoint {checkpoint})"
                                           if checkpoint else ""))
        return 130
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(_text(result))
    return int(result["exit_code"])
