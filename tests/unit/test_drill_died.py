"""A drill that died still leaves evidence; refused drills say why; the switch's record is read right. Pure parts:
the switch's record parser, died_journal, the not-started verdict, cause_of, SIGINT restoring."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from drpoc_chaos.core.metrics import verdict
from drpoc_chaos.db import DbError
from drpoc_chaos.drill import died
from drpoc_chaos.drill.control import cause_of, restore_sigint
from drpoc_chaos.drill.safety import LockHeld, parse_record
from drpoc_chaos.evidence.archive import archive_journal, record_intent, unfinished_intents
from drpoc_chaos.inventory import InventoryError
from drpoc_chaos.remote import RemoteError

INTENT = {"run_id": "0123456789abcdef0123456789abcdef", "scenario": "vpn_outage",
          "started": "2026-11-30T10:00:00.000000Z", "expires": "2026-11-30T10:15:00Z",
          "controller": {"node": "ops1", "user": "drpoc", "pid": 4242}, "gateway": {"name": "aws-vpn"},
          "objectives": {"rpo_seconds": 60}}


def test_switch_record_healthy_at_deadline():
    r = parse_record("armed 2026-11-30T10:00:00Z 120\nchecked 2026-11-30T10:02:00Z healthy\n")
    assert r["seconds"] == 120 and r["checked_at"] == "2026-11-30T10:02:00Z"
    assert r["fired"] is False and r["outcome"] == "found the tunnel healthy and did nothing"


def test_switch_record_fired_and_restored():
    r = parse_record("armed 2026-11-30T10:00:00Z 15\nfired 2026-11-30T10:00:15Z\nrestored 2026-11-30T10:00:18Z\n")
    assert r["fired"] and r["fired_at"] == "2026-11-30T10:00:15Z" and r["outcome"] == "restored the tunnel"
    r = parse_record("armed 2026-11-30T10:00:00Z 15\nfired 2026-11-30T10:00:15Z\ngave-up 2026-11-30T10:01:00Z\n")
    assert r["outcome"] == "could not restore the tunnel"
    assert parse_record("armed 2026-11-30T10:00:00Z 15\ndisarmed 2026-11-30T10:00:09Z\n")["outcome"] == "disarmed"
    assert parse_record("garbage\n\n")["outcome"] == "no record"


def test_died_journal_says_what_is_known():
    progress = {"step": "hold-outage", "t": 7.5, "at": "2026-11-30T10:00:07Z", "fault_injected": True}
    deadman = parse_record("armed 2026-11-30T10:00:00Z 15\nfired 2026-11-30T10:00:15Z\nrestored 2026-11-30T10:00:16Z")
    j = died.died_journal(INTENT, detected_by="drpoc recover", progress=progress, deadman=deadman,
                          recover={"ok": True, "tunnel": "already up", "replica": "running"},
                          now="2026-11-30T10:05:00Z")
    d = j["drpoc"]
    assert d["run_id"] == INTENT["run_id"] and d["verdict"]["status"] == "died" and d["verdict"]["passed"] is False
    assert d["died"]["last_step"] == "hold-outage" and d["died"]["fault_injected"] is True
    assert d["died"]["detected_by"] == "drpoc recover"
    text = " ".join(d["verdict"]["reasons"])
    assert "during 'hold-outage'" in text and "fired at 2026-11-30T10:00:15Z and restored the tunnel" in text
    assert j["status"] == "interrupted" and j["start"] == INTENT["started"]
    names = [e["name"] for e in d["events"]]
    assert names == ["drill_started", "last_step_seen", "deadman_fired", "recovered_by_hand"]


def test_died_journal_before_any_step_and_switch_healthy():
    deadman = parse_record("armed 2026-11-30T10:00:00Z 15\nchecked 2026-11-30T10:00:15Z healthy")
    j = died.died_journal(INTENT, detected_by="the next drill", progress=None, deadman=deadman, recover=None)
    assert "before its first step" in j["drpoc"]["verdict"]["reasons"][0]
    assert [e["name"] for e in j["drpoc"]["events"]] == ["drill_started", "deadman_checked_healthy"]


def test_progress_file_round_trip(tmp_path):
    died.write_progress(tmp_path, "run1", "ipsec-down", 1.25, fault_injected=True)
    assert died.read_progress(tmp_path, "run1")["step"] == "ipsec-down"
    died.write_progress(tmp_path, "run1", "hold-outage", 3.0, fault_injected=True)
    assert died.read_progress(tmp_path, "run1")["step"] == "hold-outage"
    died.forget_progress(tmp_path, "run1")
    assert died.read_progress(tmp_path, "run1") is None


def test_close_unfinished_archives_a_died_journal_and_closes_the_intent(tmp_path):
    record_intent(tmp_path, INTENT)
    assert [i["run_id"] for i in unfinished_intents(tmp_path)] == [INTENT["run_id"]]
    died.write_progress(tmp_path, INTENT["run_id"], "replica-loses-source-connection", 2.0, fault_injected=True)
    closed = died.close_unfinished(tmp_path, detected_by="drpoc recover", gateway=None, say=lambda m: None)
    assert [c["run_id"] for c in closed] == [INTENT["run_id"]]
    assert closed[0]["last_step"] == "replica-loses-source-connection"
    assert unfinished_intents(tmp_path) == []
    archived = json.loads(Path(closed[0]["archived_as"]).read_text())
    assert archived["drpoc"]["verdict"]["status"] == "died"
    assert died.read_progress(tmp_path, INTENT["run_id"]) is None
    # re-running finds nothing more to do
    assert died.close_unfinished(tmp_path, detected_by="drpoc recover", say=lambda m: None) == []


def test_close_unfinished_skips_the_running_drill_and_other_gateways(tmp_path):
    class Gw:
        name, address, port = "aws-vpn", "127.0.0.1", 2201
    record_intent(tmp_path, dict(INTENT, gateway={"name": "other", "address": "10.0.0.9", "port": 22}))
    mine = dict(INTENT, run_id="f" * 32, gateway={"name": "aws-vpn", "address": "127.0.0.1", "port": 2201})
    record_intent(tmp_path, mine)
    assert died.close_unfinished(tmp_path, detected_by="x", exclude=["f" * 32], say=lambda m: None) != []
    assert [i["run_id"] for i in unfinished_intents(tmp_path)] == ["f" * 32]


def test_an_archived_outcome_closes_the_intent(tmp_path):
    record_intent(tmp_path, INTENT)
    archive_journal({"experiment": {"title": "t"}, "status": "completed", "start": INTENT["started"],
                     "drpoc": {"run_id": INTENT["run_id"], "scenario": "vpn_outage", "started": INTENT["started"],
                               "verdict": {"passed": True, "status": "passed", "reasons": []}}}, tmp_path)
    assert unfinished_intents(tmp_path) == []


def test_not_started_verdict_is_its_own_outcome():
    v = verdict({"status": "interrupted"}, fault_injected=False, expect_outage=True, outage_detected=False,
                objective_results=[], sets=None, not_started=("locked", "another drill holds the drill lock"))
    assert v == {"passed": False, "status": "not-started", "cause": "locked",
                 "reasons": ["drill not started (locked): another drill holds the drill lock"]}


@pytest.mark.parametrize("exc,cause", [
    (LockHeld("another drill holds the drill lock on aws-vpn"), "locked"),
    (InventoryError("no inventory file (from $DRPOC_INVENTORY)", path="/nope.yaml"), "no-inventory"),
    (InventoryError("unknown key 'sitez'", path="/x.yaml", key="sitez"), "bad-input"),
    (RemoteError("connection refused", kind="refused"), "unreachable"),
    (RemoteError("connection reset", kind="reset"), "unreachable"),
    (RemoteError("connect timeout", kind="timeout"), "unreachable"),
    (RemoteError("authentication refused", kind="auth"), "auth"),
    (RemoteError("unknown host key", kind="hostkey"), "auth"),
    (RemoteError("sudo asks for a password", kind="sudo"), "auth"),
    (RemoteError("key_file missing", kind="config"), "bad-input"),
    (DbError("access denied", code=1045), "auth"),
    (DbError("can't connect", code=2003), "unreachable"),
    (ValueError("configuration deadman: 'ture' is not a boolean"), "bad-input"),
    (RuntimeError("boom"), "setup-error"),
])
def test_cause_of(exc, cause):
    assert cause_of(exc) == cause


def test_sigint_inherited_as_ignored_is_restored():
    """`nohup chaos run … &` starts the drill with SIGINT ignored; the control gives SIGINT back."""
    code = ("import signal, sys; from drpoc_chaos.drill.control import restore_sigint; "
            "assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN; restore_sigint(); "
            "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert r.stdout.strip() == "True", r.stderr


def test_a_handled_sigint_is_left_alone():
    # CI may run the tests themselves with SIGINT ignored (started in the background): set a handler of our own
    original = signal.getsignal(signal.SIGINT)

    def mine(signum, frame):  # pragma: no cover — never delivered
        pass

    signal.signal(signal.SIGINT, mine)
    try:
        restore_sigint()
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, original)
