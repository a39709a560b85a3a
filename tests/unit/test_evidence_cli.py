"""`drpoc review` / `drpoc verify` functions and their argparse mounting: output and exit codes."""
from __future__ import annotations

import argparse
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from drpoc_chaos.evidence.archive import archive_journal
from drpoc_chaos.evidence.cli import add_review_parser, add_verify_parser, review_command, verify_command
from drpoc_chaos.evidence.ledger import LEDGER_NAME, generate_keypair
from drpoc_chaos.evidence.samples import make_journal

JOURNALS = Path(__file__).parent / "journals"


@pytest.fixture(autouse=True)
def _no_signing_env(monkeypatch):
    monkeypatch.delenv("DRPOC_SIGNING_KEY_FILE", raising=False)


@pytest.fixture
def archive(tmp_path):
    arch = tmp_path / "journal"
    now = datetime.now(timezone.utc)
    for i in range(3):
        archive_journal(make_journal("pass", seed=i, started=now - timedelta(days=3 - i)), arch)
    return arch


def run(fn, *args, **kwargs):
    out = io.StringIO()
    code = fn(*args, out=out, **kwargs)
    return code, out.getvalue()


def test_verify_ok_and_tampered(archive):
    code, text = run(verify_command, str(archive))
    assert code == 0 and "--expect-head" in text
    assert text.startswith("OK: 3 ledger entries, 3 journal files, chain intact")
    victim = sorted(archive.glob("*.json"))[1]
    victim.write_bytes(victim.read_bytes().replace(b'"passed":true', b'"passed":false', 1))
    code, text = run(verify_command, str(archive))
    assert code == 1
    assert f"FINDING [journal-modified] {victim.name}:" in text and "FAILED: 1 finding in" in text


def test_verify_signatures_and_bad_key(archive, tmp_path):
    generate_keypair(tmp_path / "k.pem")
    code, text = run(verify_command, str(archive), str(tmp_path / "k.pem.pub"))
    assert code == 1 and text.count("[signature-missing]") == 3 and f"{LEDGER_NAME} line 1" in text
    (tmp_path / "bad.pub").write_text("nope")
    code, text = run(verify_command, str(archive), str(tmp_path / "bad.pub"))
    assert code == 2 and "not a usable Ed25519 public key" in text
    code, text = run(verify_command, str(tmp_path / "absent"))
    assert code == 1 and "archive directory does not exist" in text


def test_review_clean_archive(archive, tmp_path):
    code, text = run(review_command, [str(archive)], str(tmp_path / "out"))
    assert code == 0, text
    assert "Reviewed 3 journal(s): 3 of 3 judged drill(s) passed (100%)." in text
    assert (tmp_path / "out" / "drpoc-review.html").exists() and (tmp_path / "out" / "drpoc-review.md").exists()


def test_review_with_problems_and_strict(tmp_path):
    code, text = run(review_command, [str(JOURNALS)], str(tmp_path / "out"))
    assert code == 1
    assert "PROBLEM (input)" in text and "truncated.json" in text and "NOT PASSED" in text
    clean = [str(JOURNALS / "drpoc1_vpn_outage_deviated_lost_writes.json")]
    assert run(review_command, clean, str(tmp_path / "o2"))[0] == 0
    code, text = run(review_command, clean, str(tmp_path / "o3"), strict=True)
    assert code == 1 and "OVERDUE vpn_outage" in text


def test_argparse_mounting(archive, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="drpoc")
    sub = parser.add_subparsers(dest="command", required=True)
    add_review_parser(sub)
    add_verify_parser(sub)
    args = parser.parse_args(["verify", str(archive)])
    assert args.func(args) == 0
    args = parser.parse_args(["review", str(archive), "-o", str(tmp_path / "r"), "--schedule", "vpn_outage=1",
                              "--strict"])
    assert args.func(args) == 1  # the last drill was a day ago or more: overdue under a daily schedule
    args = parser.parse_args(["review", str(archive), "--schedule", "vpn_outage"])
    assert args.func(args) == 2
    assert "expected SCENARIO=DAYS" in capsys.readouterr().err
    defaults = parser.parse_args(["review"])
    assert defaults.paths == ["journal"] and defaults.out == "review"
    assert parser.parse_args(["verify"]).archive_dir == "journal"


def test_review_never_prints_secrets(tmp_path):
    leaky = json.loads((JOURNALS / "with_secrets.json").read_text())
    arch = tmp_path / "journal"
    archive_journal(leaky, arch)
    code, text = run(review_command, [str(arch)], str(tmp_path / "out"))
    report = (tmp_path / "out" / "drpoc-review.html").read_text() + (tmp_path / "out" / "drpoc-review.md").read_text()
    for secret in ("S3cr3t-Replica-Pw!", "0sVeryLongPreSharedKey=="):
        assert secret not in text and secret not in report
