"""Intent records: written before a drill's fault so a drill that dies is still visible; closed by its journal."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from drpoc_chaos.evidence.archive import (
    archive_journal,
    list_archive,
    parse_archive_name,
    record_intent,
    unfinished_intents,
)
from drpoc_chaos.evidence.cli import verify_command
from drpoc_chaos.evidence.ledger import (
    GENESIS,
    HEAD_FILE_ENV,
    LEDGER_NAME,
    archive_files,
    entry_hash,
    intent_files,
    read_heads,
    verify_archive,
)
from drpoc_chaos.evidence.samples import make_journal

RUN = "5f2e8c1a9b7d4e3f8a6c2b1d0e9f8a7b"
T0 = datetime(2026, 11, 29, 17, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("DRPOC_SIGNING_KEY_FILE", raising=False)
    monkeypatch.delenv(HEAD_FILE_ENV, raising=False)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def intent(run_id: str = RUN, started: datetime = T0, minutes: int = 20, **extra) -> dict:
    return {"run_id": run_id, "scenario": "vpn_outage", "started": iso(started),
            "expires": iso(started + timedelta(minutes=minutes)),
            "controller": {"node": "drill-runner-1", "user": "drpoc", "pid": 4242},
            "scope": {"source": "db-a", "replica": "db-b"}, "gateway": {"name": "gw-b", "address": "10.0.2.1"},
            "connection": "site-a-site-b", "max_outage_seconds": 120, **extra}


def outcome(run_id: str = RUN, status: str = "died", started: datetime = T0) -> dict:
    journal = make_journal("pass", seed=3, started=started, run_id=run_id)
    journal["drpoc"]["verdict"] = {"passed": False, "status": status, "reasons": ["the controller was killed"]}
    return journal


def verify(archive, **kwargs) -> tuple[int, str]:
    out = io.StringIO()
    code = verify_command(str(archive), out=out, **kwargs)
    assert "Traceback" not in out.getvalue()
    return code, out.getvalue()


def test_record_intent_file_ledger_line_and_entry(tmp_path):
    entry = record_intent(tmp_path, intent())
    assert entry.file == "20261129T170000Z_vpn_outage_5f2e8c1a.intent.json" and entry.kind == "intent"
    assert entry.seq == 1 and entry.run_id == RUN and entry.exists
    assert json.loads(entry.path.read_text()) == intent()
    line = json.loads((tmp_path / LEDGER_NAME).read_text())
    assert line["kind"] == "intent" and line["run_id"] == RUN and line["prev"] == GENESIS
    assert line["entry_hash"] == entry_hash(line)  # kind and run_id are hashed
    assert parse_archive_name(entry.file) == {"timestamp": "20261129T170000Z", "scenario": "vpn_outage",
                                              "run_id8": "5f2e8c1a", "kind": "intent"}
    # Recording the same intent again is a no-op.
    assert record_intent(tmp_path, intent()).seq == 1 and len((tmp_path / LEDGER_NAME).read_text().splitlines()) == 1


def test_intents_are_not_journals(tmp_path):
    record_intent(tmp_path, intent())
    j = archive_journal(make_journal("pass", seed=1), tmp_path)
    assert archive_files(tmp_path) == [j.file]
    assert intent_files(tmp_path) == ["20261129T170000Z_vpn_outage_5f2e8c1a.intent.json"]
    assert [e.kind for e in list_archive(tmp_path)] == ["intent", "journal"]
    assert [e.file for e in list_archive(tmp_path, kind="journal")] == [j.file]
    report = verify_archive(tmp_path, now=T0 + timedelta(minutes=5))
    assert report.ok and report.files == 1 and report.intents == 1 and report.entries == 2
    assert ", 1 journal file, 1 intent, chain intact" in report.summary()


def test_unfinished_in_progress_then_overdue(tmp_path):
    record_intent(tmp_path, intent())
    early = unfinished_intents(tmp_path, now=T0 + timedelta(minutes=5))
    assert len(early) == 1
    item = early[0]
    assert item["run_id"] == RUN and item["file"].endswith(".intent.json") and item["seq"] == 1
    assert item["overdue"] is False and item["scenario"] == "vpn_outage" and item["max_outage_seconds"] == 120
    assert unfinished_intents(tmp_path, now=T0 + timedelta(minutes=21))[0]["overdue"] is True

    report = verify_archive(tmp_path, now=T0 + timedelta(minutes=5))
    assert report.ok and report.notes == [
        "drill 5f2e8c1a (vpn_outage) started 2026-11-29 17:00:00 UTC is in progress: no outcome yet, due to end by "
        "2026-11-29 17:20:00 UTC"]
    report = verify_archive(tmp_path, now=T0 + timedelta(hours=1))
    assert [(f.kind, f.subject) for f in report.findings] == [("drill-died", item["file"])]
    assert report.findings[0].message.startswith(
        "drill 5f2e8c1a (vpn_outage) started 2026-11-29 17:00:00 UTC left no outcome: it died; run `drpoc recover` "
        "to archive what is known")


def test_verify_cli_in_progress_note_and_died_finding(tmp_path):
    now = datetime.now(timezone.utc)
    record_intent(tmp_path / "a", intent(started=now - timedelta(minutes=1)))
    code, text = verify(tmp_path / "a")
    assert code == 0 and "NOTE drill 5f2e8c1a (vpn_outage)" in text and "is in progress" in text
    record_intent(tmp_path / "b", intent(started=now - timedelta(hours=2)))
    code, text = verify(tmp_path / "b")
    assert code == 1 and "[drill-died]" in text and "left no outcome: it died; run `drpoc recover`" in text


def test_outcome_journal_closes_the_intent(tmp_path):
    record_intent(tmp_path, intent())
    record_intent(tmp_path, intent(run_id="1234abcd" * 4, started=T0 + timedelta(minutes=1)))
    entry = archive_journal(outcome(), tmp_path)
    line = json.loads((tmp_path / LEDGER_NAME).read_text().splitlines()[-1])
    assert line["kind"] == "journal" and line["run_id"] == RUN and entry.kind == "journal"
    left = unfinished_intents(tmp_path, now=T0 + timedelta(days=1))
    assert [i["run_id"] for i in left] == ["1234abcd" * 4]
    archive_journal(outcome("1234abcd" * 4, status="passed", started=T0 + timedelta(minutes=1)), tmp_path)
    assert unfinished_intents(tmp_path, now=T0 + timedelta(days=1)) == []
    assert verify_archive(tmp_path, now=T0 + timedelta(days=1)).ok


def test_a_journal_before_the_intent_is_not_its_outcome(tmp_path):
    archive_journal(outcome(), tmp_path)
    record_intent(tmp_path, intent())
    assert [i["run_id"] for i in unfinished_intents(tmp_path, now=T0)] == [RUN]


def test_old_ledger_lines_without_kind_still_verify(tmp_path):
    """Lines written before intents existed carry neither kind nor run_id: they are journals and stay valid."""
    archive_journal(make_journal("pass", seed=1), tmp_path)
    archive_journal(make_journal("pass", seed=2, started=T0 + timedelta(days=1)), tmp_path)
    prev, lines = GENESIS, []
    for raw in (tmp_path / LEDGER_NAME).read_text().splitlines():  # as the previous release wrote them
        e = json.loads(raw)
        e = {k: e[k] for k in ("seq", "file", "sha256", "recorded_at")} | {"prev": prev}
        e["entry_hash"] = prev = entry_hash(e)
        lines.append(json.dumps(e, sort_keys=True, separators=(",", ":")))
    (tmp_path / LEDGER_NAME).write_text("".join(x + "\n" for x in lines))
    assert verify_archive(tmp_path).ok
    record_intent(tmp_path, intent(started=T0 + timedelta(days=2)))  # new lines chain on
    assert verify_archive(tmp_path, now=T0 + timedelta(days=2, minutes=1)).ok
    assert [e.kind for e in list_archive(tmp_path)] == ["journal", "journal", "intent"]
    assert len(unfinished_intents(tmp_path, now=T0)) == 1


def test_intent_is_redacted(tmp_path):
    entry = record_intent(tmp_path, intent(settings={"mysql_password": "S3cr3t-Replica-Pw!",
                                                     "psk_ref": {"env": "IPSEC_PSK"}},
                                           command="mysql -pS3cr3t-Replica-Pw! -h db-b",
                                           note="psk is 0sVeryLongPreSharedKey=="),
                          secrets=["0sVeryLongPreSharedKey=="])
    text = entry.path.read_text()
    assert "S3cr3t-Replica-Pw!" not in text and "0sVeryLongPreSharedKey==" not in text
    saved = json.loads(text)
    assert saved["settings"]["mysql_password"] == "***" and saved["settings"]["psk_ref"] == {"env": "IPSEC_PSK"}
    assert saved["run_id"] == RUN


def test_intent_validation_writes_nothing(tmp_path):
    for bad, match in ((intent() | {"run_id": ""}, "run_id"), ({"scenario": "x"}, "run_id, started, expires"),
                       (intent() | {"started": "yesterday"}, "not an ISO 8601 time"),
                       (intent(minutes=-5), "not after started")):
        with pytest.raises(ValueError, match=match):
            record_intent(tmp_path / "a", bad)
    assert not (tmp_path / "a" / LEDGER_NAME).exists()


def test_intent_head_is_recorded_and_a_died_intent_rewritten_is_caught(tmp_path, monkeypatch):
    heads = tmp_path / "heads.jsonl"
    monkeypatch.setenv(HEAD_FILE_ENV, str(heads))
    arch = tmp_path / "journal"
    archive_journal(make_journal("pass", seed=1, started=T0 - timedelta(days=1)), arch)
    record_intent(arch, intent())
    assert [h["seq"] for h in read_heads(heads, arch)] == [1, 2]
    # Hiding a died drill by removing its intent and ledger line is a cut from the end: the heads catch it.
    lines = (arch / LEDGER_NAME).read_text().splitlines()
    (arch / LEDGER_NAME).write_text(lines[0] + "\n")
    next(arch.glob("*.intent.json")).unlink()
    assert verify_archive(arch).ok
    report = verify_archive(arch, heads=read_heads(heads, arch))
    assert [f.kind for f in report.findings] == ["ledger-head"]


def test_tampered_intent_file_is_a_finding(tmp_path):
    entry = record_intent(tmp_path, intent())
    entry.path.write_text(entry.path.read_text().replace("vpn_outage", "vpn_outagf"))
    report = verify_archive(tmp_path, now=T0)
    assert [(f.kind, f.subject) for f in report.findings] == [("intent-modified", entry.file)]
    entry.path.unlink()
    report = verify_archive(tmp_path, now=T0 + timedelta(days=1))
    assert [f.kind for f in report.findings] == ["intent-missing"]
    assert report.notes == ["drill 5f2e8c1a has no outcome yet and the intent file does not exist: whether it is "
                            "still running cannot be told from the archive"]
    gone = unfinished_intents(tmp_path, now=T0)[0]
    assert gone["run_id"] == RUN and "does not exist" in gone["error"] and gone["overdue"] is False
