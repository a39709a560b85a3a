"""What a user of the installed product sees: `drpoc --version`, `--json` on review and verify, and `chaos discover`
naming every argument's type (item 6 of "Install it like a product")."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from importlib.metadata import version

import pytest

from drpoc_chaos.cli import main
from drpoc_chaos.evidence.archive import archive_journal
from drpoc_chaos.evidence.samples import make_journal


@pytest.fixture(autouse=True)
def _no_signing_env(monkeypatch):
    monkeypatch.delenv("DRPOC_SIGNING_KEY_FILE", raising=False)


def test_version_is_the_installed_metadata(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"drpoc-chaos {version('drpoc-chaos')}"


@pytest.fixture
def archive(tmp_path):
    arch = tmp_path / "journal"
    now = datetime.now(timezone.utc)
    archive_journal(make_journal("pass", seed=1, started=now - timedelta(days=2)), arch)
    archive_journal(make_journal("deviated", seed=2, started=now - timedelta(days=1)), arch)
    return arch


def test_review_json_shape(archive, tmp_path, capsys):
    code = main(["review", str(archive), "--out", str(tmp_path / "out"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["exit_code"] == 0 and doc["schema"] == "drpoc-review/1"
    assert (doc["journals"], doc["judged"], doc["passed"], doc["pass_rate"]) == (2, 2, 1, 0.5)
    assert sorted(d["verdict"] for d in doc["drills"]) == ["failed", "passed"]
    assert all(d["integrity"] == "verified" for d in doc["drills"])
    assert (tmp_path / "out" / "drpoc-review.html").exists() and doc["report"]["html"].endswith(".html")
    assert doc["problems"] == []


def test_review_json_strict_exit_code_matches(archive, tmp_path, capsys):
    code = main(["review", str(archive), "--out", str(tmp_path / "out"), "--json", "--strict"])
    assert code == 1 and json.loads(capsys.readouterr().out)["exit_code"] == 1


def test_verify_json_ok_then_finding(archive, capsys):
    assert main(["verify", str(archive), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "drpoc-verify/1" and doc["ok"] is True and doc["entries"] == 2 and doc["files"] == 2
    assert doc["head"]["seq"] == 2 and len(doc["head"]["entry_hash"]) == 64 and doc["findings"] == []
    victim = sorted(archive.glob("*.json"))[0]
    victim.write_bytes(victim.read_bytes().replace(b'"status"', b'"Status"', 1))
    assert main(["verify", str(archive), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and [f["kind"] for f in doc["findings"]] == ["journal-modified"]
    assert doc["findings"][0]["subject"] == victim.name


def test_verify_json_bad_key_is_json_too(archive, tmp_path, capsys):
    (tmp_path / "bad.pub").write_text("nope")
    assert main(["verify", str(archive), "--public-key", str(tmp_path / "bad.pub"), "--json"]) == 2
    assert "not a usable Ed25519 public key" in json.loads(capsys.readouterr().out)["error"]


def test_recover_has_json_option():
    from drpoc_chaos.cli import build_parser
    args = build_parser().parse_args(["recover", "--json"])
    assert args.json is True  # the lab test (tests/lab/test_install.py) runs it


def test_chaos_discover_names_every_type():
    """Through chaoslib's own discovery (what `chaos discover` calls): no argument or return type is `object`."""
    code = ("import json, drpoc_chaos; d = drpoc_chaos.discover(); "
            "print(json.dumps([(a['name'], [(x['name'], x.get('type')) for x in a['arguments']], "
            "a.get('return_type')) for a in d['activities']]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    activities = json.loads(out)
    assert len(activities) >= 20
    untyped = [(name, arg) for name, args, _ in activities for arg, kind in args if kind in (None, "object")]
    assert untyped == []
    assert all(ret not in (None, "object") for _, _, ret in activities)
    by_name = {name: dict(args) for name, args, _ in activities}
    assert by_name["lag_within"] == {"max_seconds": "number", "configuration": "mapping", "secrets": "mapping"}
    assert by_name["tunnel_down"]["fault"] == "boolean" and by_name["tunnel_down"]["site"] == "string"
