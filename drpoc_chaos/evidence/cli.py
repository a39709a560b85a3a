"""`drpoc review` and `drpoc verify` as plain functions, plus argparse helpers the main CLI mounts.

Exit codes
    review: 0 report written, every input read, integrity verified (and, with ``strict``, every drill passed and no
            scenario overdue); 1 report written with findings (unreadable inputs, integrity findings; with
            ``strict`` also failed drills / overdue scenarios); 2 bad arguments (bad schedule, unusable key).
    verify: 0 archive intact; 1 any finding (an empty or missing archive too, unless ``allow_empty``); 2 bad
            arguments (unusable public key or heads file).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Mapping, Sequence, TextIO

from ..core import fmt
from .campaigns import load_campaigns, split_inputs
from .fleet import build_fleet
from .history import build_history, parse_schedule
from .ledger import HEAD_FILE_ENV, LedgerError, read_heads, verify_archive
from .model import load_journals

__all__ = ["review_command", "verify_command", "add_review_parser", "add_verify_parser"]


def _known_secrets(secret_envs: Sequence[str] = (), inventory: str | None = None) -> list[str]:
    """Secret values the review scrubs from every journal (besides those the journals hold under secret-looking
    keys): the named environment variables, and the inventory's database passwords when they resolve here."""
    import os

    values = [os.environ[name] for name in secret_envs if os.environ.get(name)]
    if inventory or os.environ.get("DRPOC_INVENTORY"):
        try:
            from ..inventory import load_fleet, resolve_secret

            # every pair of a fleet: a review spans them all
            for inv in load_fleet(inventory).pairs.values():
                refs = [inv.source.password_ref, inv.replica.password_ref]
                if inv.replication is not None:
                    refs.append(inv.replication.password_ref)
                for ref in refs:
                    try:
                        values.append(resolve_secret(ref))
                    except Exception:  # noqa: BLE001 - an unresolvable reference has no value to scrub
                        pass
        except Exception:  # noqa: BLE001 - no inventory here: the other secrets still apply
            pass
    return values


def _line(text: str) -> str:
    return " ".join(str(text).split())


def review_command(paths: Sequence[str], out_dir: str, *,
                   expected_interval_days: Mapping[str, float | None] | None = None,
                   public_key: str | None = None, strict: bool = False, out: TextIO | None = None,
                   secrets: Sequence[str] = (), as_json: bool = False) -> int:
    """Write the HTML and Markdown review of the journals in ``paths`` into ``out_dir``; print a summary (with
    ``as_json``, one JSON object: `review_json`). Every journal is redacted (with ``secrets`` and what it holds under
    secret-looking keys) before it is read."""
    from .report import integrity_summary, write_review  # local: keeps `drpoc --help` fast

    out = out or sys.stdout
    paths = list(paths) or ["journal"]
    journal_paths, campaign_files = split_inputs(paths)
    try:
        records, problems = load_journals(journal_paths, public_key=public_key, secrets=secrets)
    except LedgerError as exc:  # only an unusable public key gets here
        _error(out, "review", str(exc), as_json)
        return 2
    campaigns, campaign_problems = load_campaigns(campaign_files, secrets=secrets)
    problems = problems + campaign_problems
    history = build_history(records, expected_interval_days)
    fleet = build_fleet(records, history, campaigns, campaign_files=len(campaign_files))
    html_path, md_path = write_review(records, problems, history, out_dir, inputs=paths, fleet=fleet)
    failed = [r for r in records if r.counted and r.passed is False]
    code = 1 if problems or (strict and (failed or history.overdue)) else 0
    if as_json:
        print(json.dumps(review_json(records, problems, history, (html_path, md_path), code, fleet), indent=2),
              file=out)
        return code

    rate = fmt.pct(history.pass_rate)
    print(f"Reviewed {len(records)} journal(s): {history.passed} of {history.judged} judged drill(s) passed ({rate}).",
          file=out)
    print(f"Not started: {len(history.not_started)} (not counted); excluded: {len(history.excluded)} (journals that "
          "cannot be trusted).", file=out)
    print(f"Integrity: {integrity_summary(records, problems)}", file=out)

    def when(r) -> str:
        return f"{fmt.utc_short(r.started)} UTC" if r.started else "n/a"

    for r in failed:
        print(f"  NOT PASSED {when(r)} {_line(r.scenario)} {_line(fmt.short_id(r.run_id))}: "
              f"{_line(r.verdict_label)}", file=out)
        if r.verdict == "died":
            died = r.died or {}
            fired = {True: "fired", False: "did not fire", None: "no record"}[r.deadman_fired]
            print(f"      died during {_line(died.get('last_step') or 'an unknown step')}; dead-man's switch {fired}",
                  file=out)
        for reason in (r.reasons or r.issues[:1]):  # every reason: the real cause is often the second one
            print(f"      - {_line(reason)}", file=out)
    for r in history.not_started:
        print(f"  NOT STARTED {when(r)} {_line(r.scenario)} {_line(fmt.short_id(r.run_id))}: "
              f"cause {_line(r.cause or 'n/a')}", file=out)
        for reason in r.reasons:
            print(f"      - {_line(reason)}", file=out)
    for r in history.excluded:
        print(f"  EXCLUDED {when(r)} {_line(r.scenario)} {_line(fmt.short_id(r.run_id))}: integrity {r.integrity} "
              f"(claims {_line(r.verdict_label)})", file=out)
    for s in history.overdue:
        print(f"  OVERDUE {_line(s.scenario)}: {s.schedule_status}", file=out)
    if fleet.shown:
        print(f"Fleet: {len(fleet.pairs)} pair(s), {sum(1 for p in fleet.pairs if p.overdue)} overdue; "
              f"{len(campaigns)} campaign(s), {sum(1 for c in campaigns if c.halted)} halted.", file=out)
        for row in fleet.pairs:
            if row.overdue:
                print(f"  PAIR OVERDUE {_line(row.inventory or 'n/a')}/{_line(row.pair)}: "
                      f"{_line(row.schedule_status)}", file=out)
        for c in campaigns:
            if c.halted:
                print(f"  CAMPAIGN HALTED {_line(fmt.short_id(c.campaign_id))} {_line(c.scenario or 'n/a')}: "
                      f"{_line(c.halt_reason or 'no reason recorded')}", file=out)
    for p in problems:
        print(f"  PROBLEM ({p.kind}) {_line(str(p))}", file=out)
    print(f"Wrote {html_path}\nWrote {md_path}", file=out)
    return code


def _error(out: TextIO, command: str, message: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"error": message}), file=out)
    else:
        print(f"drpoc {command}: {message}", file=out)


def _iso(when: Any) -> str | None:
    return when.isoformat() if when is not None else None


def review_json(records: Sequence[Any], problems: Sequence[Any], history: Any, written: tuple[Any, Any],
                exit_code: int, fleet: Any = None) -> dict[str, Any]:
    """`drpoc review --json` (schema `drpoc-review/1`, docs/EVIDENCE.md): the summary the text output prints,
    with the fleet view (`fleet`: {shown, pairs}) and the campaigns read (`campaigns`)."""
    from .fleet import build_fleet, campaigns_json, fleet_json
    from .report import integrity_summary

    fleet = fleet if fleet is not None else build_fleet(records, history)

    return {
        "schema": "drpoc-review/1",
        "exit_code": exit_code,
        "journals": len(records),
        "judged": history.judged,
        "passed": history.passed,
        "pass_rate": history.pass_rate,
        "not_started": len(history.not_started),
        "excluded": len(history.excluded),
        "integrity": integrity_summary(records, problems),
        "drills": [{"run_id": r.run_id, "scenario": r.scenario, "started": _iso(r.started), "verdict": r.verdict,
                    "passed": r.passed, "counted": r.counted, "integrity": r.integrity, "cause": r.cause,
                    "reasons": list(r.reasons or r.issues[:1]),
                    "inventory": r.inventory if r.is_drpoc else None,
                    "pair": r.pair if r.is_drpoc else None} for r in records],
        "overdue": [{"scenario": s.scenario, "status": s.schedule_status} for s in history.overdue],
        "problems": [{"kind": p.kind, "source": p.source, "message": p.message} for p in problems],
        "fleet": fleet_json(fleet),
        "campaigns": campaigns_json(fleet),
        "report": {"html": str(written[0]), "markdown": str(written[1])},
    }


def verify_command(archive_dir: str, public_key: str | None = None, *, expected_head: str | None = None,
                   heads_file: str | None = None, heads_archive: str | None = None, allow_empty: bool = False,
                   out: TextIO | None = None, as_json: bool = False) -> int:
    """Verify an archive against its ledger (and the heads recorded in ``heads_file`` for it, or for
    ``heads_archive`` when verifying a copy); print each finding (with ``as_json``, one JSON object:
    `verify_json`); 0 only when nothing was found."""
    out = out or sys.stdout
    try:
        heads = read_heads(heads_file, heads_archive or archive_dir) if heads_file else None
        report = verify_archive(archive_dir, public_key, expected_head=expected_head, heads=heads,
                                allow_empty=allow_empty)
    except LedgerError as exc:
        _error(out, "verify", str(exc), as_json)
        return 2
    except OSError as exc:  # verify_archive reports what it finds on disk; this is a last resort, never a traceback
        _error(out, "verify", f"cannot read {archive_dir}: {exc}", as_json)
        return 1
    if heads is not None and heads_file and not any("invalid" not in h for h in heads):  # heads come from the file
        # Checking against nothing would pass silently: the very hole recorded heads are meant to close.
        report.add("heads-none", heads_file, f"no head recorded for {heads_archive or archive_dir} in this file; "
                   "pass --heads-archive with the path the archive had when it was recorded (a copy elsewhere), "
                   f"or check that {HEAD_FILE_ENV} was set where drills archive")
    if as_json:
        print(json.dumps(verify_json(report), indent=2), file=out)
        return 0 if report.ok else 1
    for f in report.findings:
        print(f"FINDING [{f.kind}] {f}", file=out)
    for note in report.notes:
        print(f"NOTE {note}", file=out)
    print(report.summary(), file=out)
    if report.ok and report.head and not heads_file:
        print(f"Record this head elsewhere to detect truncation later: --expect-head {report.head[1]} "
              f"(or set {HEAD_FILE_ENV} where drills archive: every head is then recorded for --heads)", file=out)
    return 0 if report.ok else 1


def verify_json(report: Any) -> dict[str, Any]:
    """`drpoc verify --json` (schema `drpoc-verify/1`, docs/EVIDENCE.md)."""
    return {
        "schema": "drpoc-verify/1",
        "archive": report.archive_dir,
        "ok": report.ok,
        "summary": report.summary(),
        "entries": report.entries,
        "files": report.files,
        "intents": report.intents,
        "signed_entries": report.signed_entries,
        "signatures_checked": report.signatures_checked,
        "key_id": report.key_id,
        "head": {"seq": report.head[0], "entry_hash": report.head[1]} if report.head else None,
        "heads_checked": report.heads_checked,
        "empty": report.empty,
        "findings": [{"kind": f.kind, "subject": f.subject, "message": f.message, "line": f.line, "file": f.file}
                     for f in report.findings],
        "notes": list(report.notes),
        "file_status": dict(report.file_status),
    }


# ------------------------------------------------------------------------------------------------ argparse
def _run_review(args: argparse.Namespace) -> int:
    try:
        schedule = parse_schedule(args.schedule or [])
    except ValueError as exc:
        print(f"drpoc review: {exc}", file=sys.stderr)
        return 2
    return review_command(args.paths, args.out, expected_interval_days=schedule, public_key=args.public_key,
                          strict=args.strict, secrets=_known_secrets(args.secret_env or [], args.inventory),
                          as_json=args.json)


def _run_verify(args: argparse.Namespace) -> int:
    return verify_command(args.archive_dir, args.public_key, expected_head=args.expect_head, heads_file=args.heads,
                          heads_archive=args.heads_archive, allow_empty=args.allow_empty, as_json=args.json)


def add_review_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Mount `review` on the main CLI's subparsers; sets ``func`` (call ``args.func(args)`` → exit code)."""
    p = subparsers.add_parser(
        "review", help="write the HTML + Markdown evidence report of drill journals",
        description="Read drill journals (files, archive directories, globs) and write drpoc-review.html (one "
                    "self-contained file, opens offline) and drpoc-review.md: per drill the scope, objectives vs "
                    "achieved, verdict, issues, writes, timeline chart and integrity; a history with pass rate, "
                    "trends and overdue scenarios; problems; a sign-off block.")
    p.add_argument("paths", nargs="*", default=["journal"],
                   help="journal files, archive directories or globs (default: journal)")
    p.add_argument("-o", "--out", default="review", help="output directory (default: review)")
    p.add_argument("--schedule", action="append", metavar="SCENARIO=DAYS",
                   help="expected interval between passing drills, repeatable (default: vpn_outage=7; "
                        "SCENARIO=none removes a schedule)")
    p.add_argument("--public-key", metavar="FILE", help="Ed25519 public key to check ledger signatures")
    p.add_argument("--strict", action="store_true",
                   help="also exit 1 when a drill did not pass or a scenario is overdue")
    p.add_argument("--secret-env", action="append", metavar="NAME",
                   help="an environment variable holding a secret to scrub from every journal shown, in any "
                        "encoding (repeatable); values under secret-looking keys are always scrubbed")
    p.add_argument("--inventory", metavar="FILE",
                   help="inventory whose database passwords are scrubbed too when they resolve here "
                        "(default: $DRPOC_INVENTORY when set)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object (drpoc-review/1)")
    p.set_defaults(func=_run_review)
    return p


def add_verify_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Mount `verify` on the main CLI's subparsers; sets ``func`` (call ``args.func(args)`` → exit code)."""
    p = subparsers.add_parser(
        "verify", help="check the journal archive against its hash-chained ledger",
        description="Recompute every journal's sha256 and the ledger's hash chain; report modified, deleted or "
                    "inserted journals and edited, deleted, reordered or inserted ledger lines; with --public-key "
                    "also check every Ed25519 signature; with --heads or --expect-head also that no recorded entry "
                    "was cut or rewritten. An empty or missing archive and a drill that died without an outcome "
                    "are findings. Exit 1 on any finding.")
    p.add_argument("archive_dir", nargs="?", default="journal", help="the archive directory (default: journal)")
    p.add_argument("--public-key", metavar="FILE", help="Ed25519 public key (PEM, OpenSSH, raw, hex or base64)")
    p.add_argument("--expect-head", metavar="ENTRY_HASH",
                   help="an entry_hash recorded earlier: detects lines cut from the end of the ledger")
    p.add_argument("--heads", metavar="FILE",
                   help=f"heads file written while archiving (${HEAD_FILE_ENV}): every head recorded for this "
                        "archive must still be in the ledger at its seq")
    p.add_argument("--heads-archive", metavar="PATH",
                   help="the archive's path as recorded in the heads file, when verifying a copy")
    p.add_argument("--allow-empty", action="store_true",
                   help="an empty or missing archive is OK (nothing archived yet); recorded heads still count")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object (drpoc-verify/1)")
    p.set_defaults(func=_run_verify)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m drpoc_chaos.evidence.cli review …``) until the main CLI mounts us."""
    parser = argparse.ArgumentParser(prog="drpoc-evidence")
    sub = parser.add_subparsers(dest="command", required=True)
    add_review_parser(sub)
    add_verify_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
