"""When the orchestrator dies or cannot start: the dead-man's switch never bounces a healthy tunnel, a killed drill
is archived as died, refused runs say why (not "interrupted"), and a drill started in the background can still be
interrupted. Against the real lab."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from drpoc_chaos.lab.topology import Paths

from .test_drills import DRPOC, assert_no_write_lost, chaos_cmd, on, run_drill, tunnel_up_both

pytestmark = pytest.mark.lab
AFTER_RECOVERY = ("replica-reconnects", "replica-catches-up", "write-row-after-recovery")


def ike_sa_ids(host: str = "aws-vpn") -> set[int]:
    out = on(host, "ipsec", "statusall", "onprem-aws", check=False).stdout
    return {int(m) for m in re.findall(r"onprem-aws\[(\d+)\]: ESTABLISHED", out)}


def terminations() -> int:
    log = on("aws-vpn", "cat", "/run/charon.log", check=False).stdout
    return log.count("received stroke: terminate 'onprem-aws'")


def wait_step(archive: Path, steps: tuple[str, ...], proc: subprocess.Popen, timeout: float = 60) -> str:
    """Poll the drill's progress file until it reaches one of `steps`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the drill ended before the step to kill it in"
        for f in (archive / ".inflight").glob("*.json"):
            try:
                step = json.loads(f.read_text()).get("step")
            except (OSError, ValueError):
                continue
            if step in steps:
                return step
        time.sleep(0.05)
    raise AssertionError(f"the drill never reached {steps}")


def journals(archive: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(archive.glob("*.json")) if not p.name.endswith(".intent.json")]


def test_switch_leaves_a_healthy_tunnel_alone_after_the_drill_is_killed(healthy_lab, tmp_path):
    """SIGKILL once the tunnel is back: at its deadline the switch checks, finds it healthy, records that, and
    does not run `ipsec down` (before the fix it bounced the tunnel: terminate → IKE_SA deleted → re-established)."""
    max_outage = 15
    archive = tmp_path / "archive"
    proc = subprocess.Popen(chaos_cmd("vpn_outage", tmp_path / "j.json", "outage_seconds:float=0",
                                      f"max_outage_seconds:float={max_outage}"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                            env=dict(os.environ, DRPOC_ARCHIVE_DIR=str(archive)), start_new_session=True)
    armed_at = time.monotonic()
    step = wait_step(archive, AFTER_RECOVERY, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while not tunnel_up_both():
        assert time.monotonic() < deadline, "tunnel not back although the drill had recovered it"
        time.sleep(0.5)
    ids, terms = ike_sa_ids(), terminations()
    # past the switch's deadline (armed just before the fault, within seconds of the start)
    time.sleep(max(0.0, armed_at + max_outage + 4 - time.monotonic()))
    records = on("aws-vpn", "sh", "-c", "cat /run/drpoc-deadman.d/*", check=False).stdout
    assert "checked " in records and "healthy" in records and "fired " not in records, records
    assert ike_sa_ids() == ids, "the switch re-established the IKE_SA: it bounced a healthy tunnel"
    assert terminations() == terms, "the switch sent `ipsec down` to a healthy tunnel"
    assert tunnel_up_both()
    r = subprocess.run(DRPOC + ["recover", "--archive-dir", str(archive)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "had died: archived as" in r.stdout, r.stdout + r.stderr
    [died] = [j["drpoc"] for j in journals(archive)]
    assert died["verdict"]["status"] == "died" and died["died"]["last_step"] == step
    assert died["died"]["deadman"]["checked_at"] and not died["died"]["deadman"]["fired"]
    assert_no_write_lost()


def kill_before_the_fault(archive: Path, tmp_path: Path, attempts: int = 3) -> dict:
    """Start a drill and SIGKILL it as soon as it has written its intent, before its fault; the steady-state
    probes leave a few hundred milliseconds for that. Should the kill land after the fault anyway (a loaded
    machine), `drpoc recover` puts the tunnel back and archives it, and the test tries again — bounded."""
    for i in range(attempts):
        proc = subprocess.Popen(chaos_cmd("vpn_outage", tmp_path / f"j{i}.json"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=tmp_path,
                                env=dict(os.environ, DRPOC_ARCHIVE_DIR=str(archive)), start_new_session=True)
        deadline = time.monotonic() + 60
        progress: list[Path] = []
        while not progress and proc.poll() is None and time.monotonic() < deadline:
            progress = list((archive / ".inflight").glob("*.json"))
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert progress, "the drill never recorded its progress"
        state = json.loads(progress[0].read_text())
        if not state["fault_injected"]:
            return state
        subprocess.run(DRPOC + ["recover", "--archive-dir", str(archive)], capture_output=True, timeout=120)
    raise AssertionError(f"could not kill a drill before its fault in {attempts} attempts")


def test_the_next_drill_archives_a_drill_that_died(healthy_lab, tmp_path):
    """Killed before its fault, lock left behind and expired: the next drill takes the lock over and archives the
    dead one as died before its own intent."""
    archive = tmp_path / "archive"
    dead = kill_before_the_fault(archive, tmp_path)
    # time passes: the dead drill's lease on the lock runs out
    on("aws-vpn", "sed", "-i", "-E", 's/"expires": ?[0-9.]+/"expires":1/', "/run/drpoc-drill.lock/owner")
    r, journal = run_drill(tmp_path, "vpn_outage", "outage_seconds:float=0")
    d = journal["drpoc"]
    assert d["verdict"]["status"] == "passed", (d["verdict"], r.stderr[-2000:])
    assert d["safety"]["lock"]["state"] == "taken-over"
    assert [x["run_id"] for x in d["earlier_drills_died"]] == [dead["run_id"]]
    died = [j["drpoc"] for j in journals(archive) if j["drpoc"]["run_id"] == dead["run_id"]]
    assert [x["verdict"]["status"] for x in died] == ["died"] and died[0]["died"]["fault_injected"] is False
    verify = subprocess.run(DRPOC + ["verify", str(archive)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_refused_runs_are_not_started_with_their_cause(healthy_lab, tmp_path):
    r, journal = run_drill(tmp_path, "vpn_outage", f"inventory={tmp_path / 'nope.yaml'}")
    v = journal["drpoc"]["verdict"]
    assert r.returncode == 1 and v["status"] == "not-started" and v["cause"] == "no-inventory"
    assert "no inventory file" in v["reasons"][0] and "Traceback" not in r.stderr


def test_dead_sshd_is_a_reset_not_a_handshake_timeout(healthy_lab, tmp_path):
    """The relay on 127.0.0.1 accepts, sshd behind it is gone: a reset within a second, named as such; no
    traceback on the terminal; the drill is not started (unreachable) and touches nothing."""
    pid = int((Paths().pids / "sshd-aws-vpn").read_text().split()[0])
    os.kill(pid, signal.SIGTERM)  # the lab's own sshd, started by this test session's lab
    try:
        started = time.monotonic()
        r, journal = run_drill(tmp_path, "vpn_outage")
        v = journal["drpoc"]["verdict"]
        assert v["status"] == "not-started" and v["cause"] == "unreachable", v
        assert "connection reset by aws-vpn" in v["reasons"][0] and "within 5s" not in v["reasons"][0]
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        assert time.monotonic() - started < 60
    finally:
        healthy_lab.up()
    assert tunnel_up_both()


def test_sigint_reaches_a_drill_started_in_the_background(healthy_lab, tmp_path):
    """`nohup chaos run … &` inherits SIGINT as ignored; the drill gives SIGINT back, so `kill -INT` interrupts it
    and the tunnel is restored."""
    journal_path = tmp_path / "j.json"
    proc = subprocess.Popen(chaos_cmd("vpn_outage", journal_path, "outage_seconds:float=60",
                                      "max_outage_seconds:float=90", "objective_rpo_seconds:float=90"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=dict(os.environ, DRPOC_ARCHIVE_DIR=str(tmp_path / "archive")),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_step(tmp_path / "archive", ("hold-outage",), proc)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1]
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "interrupted" and proc.returncode == 1, stderr[-2000:]
    assert journal["drpoc"]["verdict"]["status"] == "aborted"
    assert journal["drpoc"]["safety"]["restore"]["forced"] is True
    assert tunnel_up_both()
    assert_no_write_lost()


def test_recover_does_not_call_a_replica_with_a_stopped_sql_thread_recovered(healthy_lab, tmp_path):
    """Connected is not applying: with the SQL thread stopped, `drpoc recover` says so and exits 1."""
    on("onprem-db", "mariadb", "-e", "STOP SLAVE SQL_THREAD")
    try:
        r = subprocess.run(DRPOC + ["recover", "--archive-dir", str(tmp_path / "archive")], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "IO thread connected but SQL thread 'No'" in r.stdout, r.stdout
    finally:
        on("onprem-db", "mariadb", "-e", "START SLAVE SQL_THREAD")
