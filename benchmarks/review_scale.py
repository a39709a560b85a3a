"""How the evidence layer scales: archive + ledger, verify and report on 1000 realistic journals.

    .venv/bin/python benchmarks/review_scale.py [--journals 1000] [--samples 120] [--sign]

Generates journals shaped like real vpn_outage drills (docs/JOURNAL.md; ~120-sample timelines, a mix of passed,
failed, precondition-failed, interrupted and generic runs, one every ~6 hours going back in time) in memory, then
times, in a temporary directory that is removed afterwards:
  1. archive_journal for each (redaction, file write + fsync, ledger append + fsync, flock), optionally signed;
  2. verify_archive over the whole archive;
  3. write_report (load, verify, history, HTML with one SVG timeline per drill, Markdown).
Target on 2 cores: each step <= 5 s. Bounded: fixed work, no network, stops by itself.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drpoc_chaos.evidence.archive import archive_journal  # noqa: E402
from drpoc_chaos.evidence.ledger import generate_keypair, verify_archive  # noqa: E402
from drpoc_chaos.evidence.report import write_report  # noqa: E402
from drpoc_chaos.evidence.samples import make_journal  # noqa: E402

TARGET_SECONDS = 5.0
MIX = ["pass"] * 14 + ["deviated", "precondition", "interrupted", "generic"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--journals", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=120)
    ap.add_argument("--sign", action="store_true", help="sign every ledger entry with a fresh Ed25519 key")
    args = ap.parse_args(argv)
    os.environ.pop("DRPOC_SIGNING_KEY_FILE", None)

    t0 = time.perf_counter()
    end = datetime(2026, 11, 29, 17, 0, tzinfo=timezone.utc)
    journals = [make_journal(MIX[i % len(MIX)], seed=i, samples=args.samples,
                             started=end - timedelta(hours=6 * (args.journals - i)))
                for i in range(args.journals)]
    gen = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="drpoc-bench-") as tmp_s:
        tmp = Path(tmp_s)
        archive = tmp / "journal"
        key = None
        if args.sign:
            generate_keypair(tmp / "signing.pem")
            key = (tmp / "signing.pem").read_bytes()
        secrets = ["S3cr3t-Replica-Pw!", "0sVeryLongPreSharedKey=="]

        t = time.perf_counter()
        for j in journals:
            archive_journal(j, archive, secrets=secrets, signing_key=key)
        t_archive = time.perf_counter() - t
        size = sum(p.stat().st_size for p in archive.iterdir())

        t = time.perf_counter()
        report = verify_archive(archive, (tmp / "signing.pem.pub") if args.sign else None)
        t_verify = time.perf_counter() - t
        assert report.ok, report.findings[:3]

        t = time.perf_counter()
        html, md = write_report([archive], tmp / "review", now=end)
        t_report = time.perf_counter() - t
        html_mb, md_mb = html.stat().st_size / 1e6, md.stat().st_size / 1e6

    print(f"journals: {args.journals} x {args.samples} samples, archive {size / 1e6:.1f} MB "
          f"(generated in memory in {gen:.2f} s), cpus {os.cpu_count()}, signed: {args.sign}")
    rows = [("archive + ledger write", t_archive, f"{t_archive / args.journals * 1000:.2f} ms/journal"),
            ("verify_archive", t_verify, f"{report.entries} entries"),
            ("write_report", t_report, f"HTML {html_mb:.1f} MB, Markdown {md_mb:.1f} MB")]
    worst = 0.0
    for name, secs, note in rows:
        flag = "ok" if secs <= TARGET_SECONDS else "OVER TARGET"
        worst = max(worst, secs)
        print(f"  {name:<24} {secs:6.2f} s  ({note})  [{flag}, target <= {TARGET_SECONDS:g} s]")
    return 0 if worst <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
