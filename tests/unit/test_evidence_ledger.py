"""Archive + hash-chained ledger + Ed25519 signatures: format, concurrency, and every kind of tampering."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drpoc_chaos.evidence.archive import archive_journal, list_archive, parse_archive_name
from drpoc_chaos.evidence.ledger import (
    GENESIS,
    LEDGER_NAME,
    LedgerError,
    canonical_json,
    entry_hash,
    generate_keypair,
    key_id,
    ledger_head,
    load_private_key,
    load_public_key,
    verify_archive,
)
from drpoc_chaos.evidence.samples import make_journal

JOURNALS = Path(__file__).parent / "journals"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_signing_env(monkeypatch):
    monkeypatch.delenv("DRPOC_SIGNING_KEY_FILE", raising=False)


@pytest.fixture
def keypair(tmp_path):
    priv = tmp_path / "keys" / "drpoc-signing.pem"
    priv.parent.mkdir()
    kid = generate_keypair(priv)
    return priv, priv.with_name(priv.name + ".pub"), kid


def fill(archive: Path, n: int = 5, key=None) -> list:
    start = datetime(2026, 11, 1, 17, 0, tzinfo=timezone.utc)
    kinds = ["pass", "deviated", "pass", "precondition", "interrupted", "generic"]
    return [archive_journal(make_journal(kinds[i % len(kinds)], seed=i, started=start + timedelta(days=i)),
                            archive, signing_key=key) for i in range(n)]


def ledger_lines(archive: Path) -> list[str]:
    return (archive / LEDGER_NAME).read_text().splitlines()


def write_lines(archive: Path, lines: list[str]) -> None:
    (archive / LEDGER_NAME).write_text("".join(line + "\n" for line in lines))


def subjects(report) -> set[str]:
    return {f.subject for f in report.findings}


def kinds(report) -> set[str]:
    return {f.kind for f in report.findings}


# ------------------------------------------------------------------------------------------------ format
def test_archive_name_ledger_format_and_chain(tmp_path, keypair):
    priv, pub, kid = keypair
    journal = json.loads((JOURNALS / "drpoc1_vpn_outage_passed.json").read_text())
    entry = archive_journal(journal, tmp_path, signing_key=priv.read_bytes())
    assert entry.file == "20261101T170000Z_vpn_outage_2b0c1a2f.json"
    assert entry.seq == 1 and entry.signed and entry.key_id == kid and entry.run_id.startswith("2b0c1a2f")
    fill(tmp_path, 3, key=str(priv))
    lines = [json.loads(line) for line in ledger_lines(tmp_path)]
    assert [e["seq"] for e in lines] == [1, 2, 3, 4]
    public = serialization.load_pem_public_key(pub.read_bytes())
    prev = GENESIS
    for e in lines:
        assert set(e) == {"seq", "file", "sha256", "prev", "recorded_at", "kind", "run_id", "entry_hash",
                          "signature", "key_id"}
        assert e["kind"] == "journal"
        assert e["run_id"] == json.loads((tmp_path / e["file"]).read_text())["drpoc"]["run_id"]
        assert e["prev"] == prev
        assert e["sha256"] == hashlib.sha256((tmp_path / e["file"]).read_bytes()).hexdigest()
        body = {k: v for k, v in e.items() if k not in ("entry_hash", "signature")}
        assert e["entry_hash"] == hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
        assert e["entry_hash"] == entry_hash(e)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", e["recorded_at"])
        assert re.fullmatch(r"[0-9a-f]{16}", e["key_id"])
        public.verify(base64.b64decode(e["signature"]), e["entry_hash"].encode())  # independent check
        prev = e["entry_hash"]
    assert ledger_head(tmp_path) == (4, lines[-1]["entry_hash"])
    report = verify_archive(tmp_path, pub)
    assert report.ok and report.findings == [] and report.signed_entries == 4 and report.signatures_checked
    assert set(report.file_status.values()) == {"verified"}
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_generic_journal_gets_title_slug_and_new_run_id(tmp_path):
    entry = archive_journal(JOURNALS / "chaostoolkit_generic_no_drpoc.json", tmp_path)
    parsed = parse_archive_name(entry.file)
    assert parsed["timestamp"] == "20261123T090000Z"
    assert parsed["scenario"] == "vpn_outage_replication_survives_and_recovers"
    assert re.fullmatch(r"[0-9a-f]{8}", parsed["run_id8"])


def test_archiving_the_same_journal_twice_is_idempotent(tmp_path):
    journal = json.loads((JOURNALS / "drpoc1_vpn_outage_passed.json").read_text())
    a = archive_journal(journal, tmp_path)
    b = archive_journal(journal, tmp_path)
    assert a.file == b.file and b.seq == 1 and len(ledger_lines(tmp_path)) == 1
    journal["drpoc"]["verdict"]["reasons"] = ["re-judged"]  # same run, different content: kept, never overwritten
    c = archive_journal(journal, tmp_path)
    assert c.file == a.file.replace(".json", "-2.json") and c.seq == 2
    assert verify_archive(tmp_path).ok


def test_unreadable_journal_and_bad_key_fail_before_writing(tmp_path):
    with pytest.raises(ValueError, match="truncated.json is not valid JSON"):
        archive_journal(JOURNALS / "truncated.json", tmp_path / "a")
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n")
    with pytest.raises(LedgerError) as exc:
        archive_journal(JOURNALS / "drpoc1_vpn_outage_passed.json", tmp_path / "b", signing_key=str(bad))
    assert "TOPSECRETMATERIAL" not in str(exc.value) and str(bad) in str(exc.value)
    assert not (tmp_path / "b" / LEDGER_NAME).exists()


def test_signing_key_formats_and_env(tmp_path, keypair, monkeypatch):
    priv, pub, kid = keypair
    key = load_private_key(priv)
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    for source in (raw, raw.hex().encode(), base64.b64encode(raw)):
        assert key_id(load_private_key(source)) == kid
    ssh = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    assert key_id(load_private_key(ssh)) == kid
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    public = key.public_key()
    ssh_pub = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    raw_pub = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for source in (pub, ssh_pub + b" drpoc@runner\n", raw_pub, raw_pub.hex().encode(), priv):
        assert key_id(load_public_key(source)) == kid
    monkeypatch.setenv("DRPOC_SIGNING_KEY_FILE", str(priv))
    entry = archive_journal(JOURNALS / "drpoc1_vpn_outage_passed.json", tmp_path / "arch")
    assert entry.signed and entry.key_id == kid
    assert verify_archive(tmp_path / "arch", pub).ok


def test_concurrent_archiving_from_two_processes(tmp_path):
    code = (
        "import sys; from datetime import datetime, timedelta, timezone; from pathlib import Path\n"
        "from drpoc_chaos.evidence.archive import archive_journal\n"
        "from drpoc_chaos.evidence.samples import make_journal\n"
        "w = int(sys.argv[1]); t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)\n"
        "for i in range(15):\n"
        "    archive_journal(make_journal('pass', seed=w * 100 + i, samples=20,\n"
        "                    started=t0 + timedelta(hours=w * 100 + i)), Path(sys.argv[2]))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DRPOC_SIGNING_KEY_FILE", None)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(w), str(tmp_path)], env=env) for w in (1, 2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    lines = [json.loads(line) for line in ledger_lines(tmp_path)]
    assert [e["seq"] for e in lines] == list(range(1, 31))
    report = verify_archive(tmp_path)
    assert report.ok and report.entries == 30 and report.files == 30
    assert len(list_archive(tmp_path)) == 30


def test_list_archive_reports_missing_and_unledgered(tmp_path):
    entries = fill(tmp_path, 3)
    entries[0].path.unlink()
    (tmp_path / "stray.json").write_text("{}")
    listed = list_archive(tmp_path)
    assert [(e.file, e.seq, e.exists) for e in listed] == [
        (entries[0].file, 1, False), (entries[1].file, 2, True), (entries[2].file, 3, True), ("stray.json", None, True)]


# ------------------------------------------------------------------------------------------------ tampering
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_single_byte_change_in_a_journal_names_that_file(tmp_path, where):
    entries = fill(tmp_path, 4)
    victim = entries[2].path
    data = bytearray(victim.read_bytes())
    pos = {"start": 1, "middle": len(data) // 2, "end": len(data) - 3}[where]
    data[pos] ^= 0x01
    victim.write_bytes(bytes(data))
    report = verify_archive(tmp_path)
    assert not report.ok
    assert [(f.kind, f.subject) for f in report.findings] == [("journal-modified", victim.name)]
    assert "ledger.jsonl line 3" in report.findings[0].message
    assert report.file_status[victim.name] == "modified"
    assert report.file_status[entries[0].file] == "verified"


def test_deleted_journal(tmp_path):
    entries = fill(tmp_path, 4)
    entries[1].path.unlink()
    report = verify_archive(tmp_path)
    assert [(f.kind, f.subject) for f in report.findings] == [("journal-missing", entries[1].file)]
    assert report.findings[0].line == 2


def test_inserted_journal(tmp_path):
    fill(tmp_path, 3)
    forged = tmp_path / "20261102T170000Z_vpn_outage_aaaaaaaa.json"
    forged.write_text(json.dumps(make_journal("pass", seed=99)))
    report = verify_archive(tmp_path)
    assert [(f.kind, f.subject) for f in report.findings] == [("journal-not-in-ledger", forged.name)]
    assert report.file_status[forged.name] == "not in ledger"


def test_reordered_ledger_lines(tmp_path):
    fill(tmp_path, 5)
    lines = ledger_lines(tmp_path)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(tmp_path, lines)
    report = verify_archive(tmp_path)
    assert not report.ok
    assert {"ledger-seq", "ledger-chain"} <= kinds(report)
    assert subjects(report) <= {f"{LEDGER_NAME} line {n}" for n in (2, 3, 4)}
    assert f"{LEDGER_NAME} line 2" in subjects(report) and f"{LEDGER_NAME} line 3" in subjects(report)
    # The journals themselves are intact.
    assert not any(k.startswith("journal-") for k in kinds(report))


def test_edited_ledger_line(tmp_path):
    entries = fill(tmp_path, 4)
    lines = ledger_lines(tmp_path)
    lines[2] = lines[2].replace('"recorded_at":"', '"recorded_at":"1').replace(entries[2].file, entries[2].file)
    write_lines(tmp_path, lines)
    report = verify_archive(tmp_path)
    assert [(f.kind, f.subject) for f in report.findings] == [("ledger-line-modified", f"{LEDGER_NAME} line 3")]
    assert report.file_status[entries[2].file] == "ledger entry altered"


def test_journal_and_ledger_rewritten_together_is_caught_by_the_chain(tmp_path):
    """A forger who edits a journal, fixes its sha256 and recomputes that line's entry_hash breaks the chain."""
    entries = fill(tmp_path, 4)
    victim = entries[1].path
    doc = json.loads(victim.read_text())
    doc["drpoc"]["writes"]["lost"] = []
    victim.write_text(json.dumps(doc))
    lines = ledger_lines(tmp_path)
    e = json.loads(lines[1])
    e["sha256"] = hashlib.sha256(victim.read_bytes()).hexdigest()
    e["entry_hash"] = entry_hash(e)
    lines[1] = json.dumps(e)
    write_lines(tmp_path, lines)
    report = verify_archive(tmp_path)
    assert [(f.kind, f.subject) for f in report.findings] == [("ledger-chain", f"{LEDGER_NAME} line 3")]


def test_full_rewrite_is_caught_by_signatures(tmp_path, keypair):
    priv, pub, _ = keypair
    entries = fill(tmp_path, 3, key=priv)
    victim = entries[0].path
    victim.write_text(victim.read_text().replace('"passed":true', '"passed":false'))
    prev = GENESIS
    lines = []
    for line in ledger_lines(tmp_path):  # the forger re-chains everything but has no private key
        e = json.loads(line)
        e["sha256"] = hashlib.sha256((tmp_path / e["file"]).read_bytes()).hexdigest()
        e["prev"] = prev
        e["entry_hash"] = prev = entry_hash(e)
        lines.append(json.dumps(e))
    write_lines(tmp_path, lines)
    assert verify_archive(tmp_path).ok  # without the key the chain alone cannot tell
    report = verify_archive(tmp_path, pub)
    assert {(f.kind, f.subject) for f in report.findings} == {
        ("signature-invalid", f"{LEDGER_NAME} line {n}") for n in (1, 2, 3)}


def test_deleted_ledger_line(tmp_path):
    entries = fill(tmp_path, 5)
    lines = ledger_lines(tmp_path)
    del lines[2]
    write_lines(tmp_path, lines)
    report = verify_archive(tmp_path)
    found = {(f.kind, f.subject) for f in report.findings}
    assert found == {("ledger-seq", f"{LEDGER_NAME} line 3"), ("ledger-chain", f"{LEDGER_NAME} line 3"),
                     ("journal-not-in-ledger", entries[2].file)}
    assert "1 line(s) missing" in next(f.message for f in report.findings if f.kind == "ledger-seq")


def test_first_ledger_line_deleted(tmp_path):
    entries = fill(tmp_path, 3)
    write_lines(tmp_path, ledger_lines(tmp_path)[1:])
    report = verify_archive(tmp_path)
    assert ("ledger-seq", f"{LEDGER_NAME} line 1") in {(f.kind, f.subject) for f in report.findings}
    assert ("ledger-chain", f"{LEDGER_NAME} line 1") in {(f.kind, f.subject) for f in report.findings}
    assert ("journal-not-in-ledger", entries[0].file) in {(f.kind, f.subject) for f in report.findings}


def test_inserted_ledger_line(tmp_path):
    fill(tmp_path, 4)
    lines = ledger_lines(tmp_path)
    lines.insert(2, lines[1])  # a copy of line 2 slipped in as line 3
    write_lines(tmp_path, lines)
    report = verify_archive(tmp_path)
    found = {(f.kind, f.subject) for f in report.findings}
    assert ("ledger-seq", f"{LEDGER_NAME} line 3") in found
    assert ("ledger-duplicate", f"{LEDGER_NAME} line 3") in found
    assert ("ledger-chain", f"{LEDGER_NAME} line 3") in found


def test_garbage_and_torn_ledger_lines(tmp_path):
    fill(tmp_path, 3)
    lines = ledger_lines(tmp_path)
    lines[1] = "this is not json"
    (tmp_path / LEDGER_NAME).write_text("\n".join(lines) + "\n" + lines[2][:40])
    report = verify_archive(tmp_path)
    found = {(f.kind, f.subject) for f in report.findings}
    assert ("ledger-unparseable", f"{LEDGER_NAME} line 2") in found
    assert ("ledger-torn", f"{LEDGER_NAME} line 4") in found
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(LedgerError, match="does not end with a newline"):
        archive_journal(make_journal("pass", seed=42), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written next to a broken ledger


def test_bad_signature(tmp_path, keypair):
    priv, pub, _ = keypair
    fill(tmp_path, 3, key=priv)
    lines = ledger_lines(tmp_path)
    e = json.loads(lines[1])
    sig = bytearray(base64.b64decode(e["signature"]))
    sig[5] ^= 0xFF
    e["signature"] = base64.b64encode(bytes(sig)).decode()
    lines[1] = json.dumps(e, sort_keys=True, separators=(",", ":"))
    write_lines(tmp_path, lines)
    report = verify_archive(tmp_path, pub)
    assert [(f.kind, f.subject) for f in report.findings] == [("signature-invalid", f"{LEDGER_NAME} line 2")]
    assert verify_archive(tmp_path).ok  # the signature is not part of entry_hash: only the key can tell


def test_wrong_key_and_missing_signatures(tmp_path, keypair):
    priv, pub, _ = keypair
    fill(tmp_path / "signed", 2, key=priv)
    other = Ed25519PrivateKey.generate().public_key()
    report = verify_archive(tmp_path / "signed", other)
    assert {f.kind for f in report.findings} == {"signature-key", "signature-invalid"}
    fill(tmp_path / "unsigned", 2)
    report = verify_archive(tmp_path / "unsigned", pub)
    assert [(f.kind, f.subject) for f in report.findings] == [
        ("signature-missing", f"{LEDGER_NAME} line 1"), ("signature-missing", f"{LEDGER_NAME} line 2")]


def test_truncated_ledger_tail_needs_the_recorded_head(tmp_path):
    entries = fill(tmp_path, 4)
    head = ledger_head(tmp_path)
    write_lines(tmp_path, ledger_lines(tmp_path)[:-1])
    entries[-1].path.unlink()  # a careful forger removes the journal too
    assert verify_archive(tmp_path).ok
    report = verify_archive(tmp_path, expected_head=head[1])
    assert [f.kind for f in report.findings] == ["ledger-head"]


def test_missing_archive_ledger_and_empty_archive(tmp_path):
    # An empty or missing archive is what deleting everything looks like: a finding unless allowed.
    assert [f.kind for f in verify_archive(tmp_path / "nope").findings] == ["archive-missing"]
    assert verify_archive(tmp_path / "nope", allow_empty=True).ok
    (tmp_path / "empty").mkdir()
    assert [f.kind for f in verify_archive(tmp_path / "empty").findings] == ["archive-empty"]
    assert verify_archive(tmp_path / "empty", allow_empty=True).ok
    fill(tmp_path / "a", 2)
    (tmp_path / "a" / LEDGER_NAME).unlink()
    report = verify_archive(tmp_path / "a")
    assert [f.kind for f in report.findings] == ["ledger-missing"]
    assert set(report.file_status.values()) == {"no ledger"}
