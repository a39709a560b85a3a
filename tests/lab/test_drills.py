"""The experiments against the real lab: each passes; broken runs fail for the right reason; signals and a killed
orchestrator never leave the tunnel down or lose an acknowledged write."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pymysql
import pytest

from drpoc_chaos.lab.topology import MYSQL_PORT_BASE, Paths

from .support import recover_twice, renamed_inventory

SOURCE_PORT, REPLICA_PORT = MYSQL_PORT_BASE, MYSQL_PORT_BASE + 1  # the lab's, as `drpoc lab up` publishes them

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
CHAOS = [str(Path(sys.executable).parent / "chaos"), "--no-version-check", "--no-log-file"]
DRPOC = [sys.executable, "-m", "drpoc_chaos.cli"]
EVENTS = ["fault_injected", "outage_detected", "recovery_started", "tunnel_up", "io_reconnected", "caught_up"]


def chaos_cmd(experiment: str, journal: Path, *variables: str, rollback: str | None = None,
              var_file: Path | None = None) -> list[str]:
    cmd = CHAOS + ["run", "--journal-path", str(journal)]
    if rollback:
        cmd += ["--rollback-strategy", rollback]
    if var_file:
        cmd += ["--var-file", str(var_file)]
    for v in variables:
        cmd += ["--var", v]
    return cmd + [str(REPO / "experiments" / f"{experiment}.yaml")]


def run_drill(tmp_path: Path, experiment: str, *variables: str, rollback: str | None = None,
              timeout: float = 300, var_file: Path | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    journal = tmp_path / f"{experiment}.json"
    env = dict(os.environ, DRPOC_ARCHIVE_DIR=str(tmp_path / "archive"))
    r = subprocess.run(chaos_cmd(experiment, journal, *variables, rollback=rollback, var_file=var_file),
                       capture_output=True,
                       text=True, timeout=timeout, env=env, cwd=tmp_path)
    assert journal.exists(), r.stderr[-3000:]
    return r, json.loads(journal.read_text())


def on(host: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(DRPOC + ["lab", "exec", host, "--", *cmd], capture_output=True, text=True, check=check,
                          timeout=60)


def tunnel_up_both() -> bool:
    return all("INSTALLED" in on(h, "ipsec", "statusall", check=False).stdout for h in ("aws-vpn", "onprem-vpn"))


def db(port: int):
    password = (Paths().secrets / "mysql_password").read_text().strip()
    return pymysql.connect(host="127.0.0.1", port=port, user="drpoc", password=password, database="testdb",
                           autocommit=True, connect_timeout=5)


def drill_rows(port: int) -> set[tuple[int, str]]:
    with db(port) as c, c.cursor() as cur:
        cur.execute("SELECT id, msg FROM ping WHERE msg LIKE 'drpoc:%%'")
        return set(cur.fetchall())


def assert_no_write_lost(timeout: float = 30) -> None:
    """Everything the source committed for drills is on the replica (given time to catch up)."""
    deadline = time.monotonic() + timeout
    while True:
        missing = drill_rows(SOURCE_PORT) - drill_rows(REPLICA_PORT)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not missing, f"{len(missing)} rows missing on the replica, e.g. {sorted(missing)[:3]}"


def assert_passing_drill(r: subprocess.CompletedProcess, journal: dict, tmp_path: Path) -> dict:
    d = journal.get("drpoc")
    assert d, r.stderr[-3000:]
    assert r.returncode == 0, (d["verdict"], r.stderr[-2000:])
    assert d["verdict"] == {"passed": True, "status": "passed", "reasons": []}
    assert journal["status"] == "completed" and not journal["deviated"]
    names = [e["name"] for e in d["events"]]
    for name in EVENTS:
        assert name in names, f"event {name} missing from {names}"
    m = d["metrics"]
    assert m["lost_writes"] == 0 and m["unexpected_writes"] == 0 and m["duplicated_writes"] == 0
    assert d["writes"]["acknowledged"] == d["writes"]["observed"] > 0
    for key in ("detection_seconds", "outage_seconds", "tunnel_recovery_seconds", "replica_reconnect_seconds",
                "catch_up_seconds", "rto_seconds"):
        assert m[key] is not None and m[key] >= 0, key
    samples = d["timeline"]["samples"]
    gaps = sorted(b["t"] - a["t"] for a, b in pairwise(samples))
    assert gaps[len(gaps) // 2] <= 0.55, "timeline not sampled every 0.5 s"
    fault_key = f"{d['roles']['fault_site']}_tunnel"
    assert any(s[fault_key] == "down" for s in samples) and any(s["io"] == "Connecting" for s in samples)
    assert all(o["passed"] for o in d["objective_results"])
    archived = Path(d["archived_as"])
    assert archived.exists() and archived.parent == tmp_path / "archive"
    # the archived (redacted) copy keeps the verdict: redaction must not eat the drpoc key
    assert json.loads(archived.read_text())["drpoc"]["verdict"]["passed"] is True
    return d


def test_seed_drill_passes_with_measurements(healthy_lab, tmp_path):
    r, journal = run_drill(tmp_path, "vpn_outage")
    d = assert_passing_drill(r, journal, tmp_path)
    m = d["metrics"]
    # detection follows the replica's net timeout (lab default 4 s); the journal's error text is the seed's
    knobs = json.loads(Paths().lab_json.read_text())["knobs"]
    assert knobs["net_timeout"] - 0.5 <= m["detection_seconds"] <= knobs["net_timeout"] + 2
    errors = [s["last_io_error"] for s in d["timeline"]["samples"] if s.get("last_io_errno")]
    assert errors and '(110 "Connection timed out")' in errors[0]
    assert m["writes_during_outage"]["acknowledged"] == m["writes_during_outage"]["observed"] >= 5
    assert m["rpo_exposure"]["max_seconds"] >= m["detection_seconds"]
    # the dead-man's switch was disarmed for real: no process of it is left on the gateway
    assert on("aws-vpn", "pgrep", "-f", "drpoc-gw _deadman", check=False).returncode == 1
    # its record was dropped once the journal was archived; the intent written before the fault is closed
    assert on("aws-vpn", "test", "-e", f"/run/drpoc-deadman.d/{d['run_id']}", check=False).returncode == 1
    assert d["safety"]["deadman"]["record"]["outcome"] == "disarmed"
    assert d["intent"] and (tmp_path / "archive" / d["intent"]).exists()
    assert d["feasibility"]["feasible"] is True and d["feasibility"]["replica"]["net_timeout"] == knobs["net_timeout"]
    verify = subprocess.run(DRPOC + ["verify", str(tmp_path / "archive")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_seed_drill_on_a_hand_written_inventory_detects_the_stroke_control(healthy_lab, tmp_path, monkeypatch):
    """Sites called cloud and dc1, `control` left to auto: the experiment runs unchanged, the gateways are found to
    speak stroke (the seed's `ipsec` commands) and the journal says so. (Every experiment runs on such an inventory
    in swanctl mode: test_swanctl.py.)"""
    monkeypatch.setenv("DRPOC_INVENTORY", str(renamed_inventory(tmp_path)))
    r, journal = run_drill(tmp_path, "vpn_outage")
    d = assert_passing_drill(r, journal, tmp_path)
    assert {k: (g["configured"], g["control"]) for k, g in d["roles"]["gateways"].items()} == {
        "cloud": ("auto", "ipsec"), "dc1": ("auto", "ipsec")}
    steps = [x["output"]["step"]["command"] for x in journal["run"]
             if isinstance(x.get("output"), dict) and isinstance(x["output"].get("step"), dict)]
    assert steps == ["ipsec down onprem-aws"]


@pytest.mark.parametrize("experiment", ["vpn_one_sided_recovery", "replica_stuck_connecting",
                                        "vpn_outage_under_load"])
def test_scenario_passes(healthy_lab, tmp_path, experiment):
    r, journal = run_drill(tmp_path, experiment)
    d = assert_passing_drill(r, journal, tmp_path)
    runs = {x["activity"]["name"]: x for x in journal["run"]}
    if experiment == "vpn_one_sided_recovery":
        one = runs["one-sided-tunnel-up-on-fault-side-only"]["output"]
        assert one["established"] is False
        assert one["step"]["said"]["peer_not_responding"] or one["step"]["said"]["failed"]
        assert runs["recover-tunnel-in-seed-order"]["output"]["states"] == {"aws": "up", "onprem": "up"}
    if experiment == "replica_stuck_connecting":
        stuck = d["metrics"]["stuck_replica"]
        assert stuck["stuck_observed_seconds"] >= 3
        assert stuck["reconnect_after_restart_seconds"] < 5
        assert stuck["time_saved_up_to_seconds"] > 30
        assert "replica_restarted" in [e["name"] for e in d["events"]]
    if experiment == "vpn_outage_under_load":
        m = d["metrics"]
        assert m["writes_during_outage"]["acknowledged"] >= 50 * 8  # ≥ 50/s through a 10 s outage
        assert m["apply_rate_per_second"] and m["apply_rate_per_second"] > 0
        # the last steady-state probe compared the whole write table, before the fault and after catch-up
        checks = d["parity"]
        assert len(checks) == 2 and all(c["verdict"] == "equal" for c in checks)
        assert [t["table"] for t in checks[-1]["tables"]] == ["testdb.ping"]
        assert checks[-1]["tables"][0]["rows"] >= m["writes_during_outage"]["acknowledged"]
    assert_no_write_lost()


def test_unmet_steady_state_injects_nothing_and_fails(healthy_lab, tmp_path):
    on("onprem-db", "mariadb", "-e", "STOP SLAVE")
    try:
        r, journal = run_drill(tmp_path, "vpn_outage")
    finally:
        on("onprem-db", "mariadb", "-e", "START SLAVE")
    d = journal["drpoc"]
    assert r.returncode == 1
    assert d["verdict"]["status"] == "precondition-failed"
    assert "replica-io-and-sql-threads-running" in d["verdict"]["reasons"][0]
    assert "fault_injected" not in [e["name"] for e in d["events"]]
    assert journal["run"] == []
    assert all(s["aws_tunnel"] == "up" for s in d["timeline"]["samples"])


def test_fault_that_does_not_bite_fails(healthy_lab, tmp_path):
    # the tunnel comes back before the replica's net timeout: the replica never notices, the drill proved nothing
    # (on purpose shorter than the replica can detect: the feasibility check only warns)
    r, journal = run_drill(tmp_path, "vpn_outage", "detect_timeout_seconds:float=0.5", "outage_seconds:float=0",
                           "writes_during_outage:int=1", "feasibility=warn")
    d = journal["drpoc"]
    assert r.returncode == 1
    assert d["verdict"]["status"] == "fault-not-effective"
    assert any("never lost its IO connection" in x for x in d["verdict"]["reasons"])
    assert tunnel_up_both()


def test_impossible_objective_fails(healthy_lab, tmp_path):
    r, journal = run_drill(tmp_path, "vpn_outage", "objective_rto_seconds:float=0.001")
    d = journal["drpoc"]
    assert r.returncode == 1 and journal["status"] == "failed"
    assert d["verdict"]["status"] == "failed"
    assert any(x.startswith("objective missed: RTO") for x in d["verdict"]["reasons"])
    assert d["metrics"]["lost_writes"] == 0


def test_lock_refuses_a_second_drill(healthy_lab, tmp_path):
    env = dict(os.environ, DRPOC_ARCHIVE_DIR=str(tmp_path / "archive"))
    first = subprocess.Popen(chaos_cmd("vpn_outage", tmp_path / "first.json", "outage_seconds:float=10"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while on("aws-vpn", "test", "-d", "/run/drpoc-drill.lock", check=False).returncode != 0:
            assert time.monotonic() < deadline, "first drill never took the lock"
            time.sleep(0.2)
        r, journal = run_drill(tmp_path, "vpn_outage")
        assert r.returncode == 1
        # refused, not failed: the review counts it apart, with its cause
        assert journal["drpoc"]["verdict"]["status"] == "not-started"
        assert journal["drpoc"]["verdict"]["cause"] == "locked"
        assert journal["drpoc"]["verdict"]["reasons"][0].startswith(
            "drill not started (locked): another drill holds the drill lock on aws-vpn")
        assert "fault_injected" not in [e["name"] for e in journal["drpoc"]["events"]]
    finally:
        assert first.wait(timeout=120) == 0
    assert on("aws-vpn", "test", "-d", "/run/drpoc-drill.lock", check=False).returncode != 0


def _wait_fault(timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while "none" not in on("aws-vpn", "ipsec", "statusall", check=False).stdout.split("connecting):")[-1]:
        assert time.monotonic() < deadline, "the drill never took the tunnel down"
        time.sleep(0.1)
    return time.monotonic()


@pytest.mark.parametrize("sig,rollback", [(signal.SIGINT, None), (signal.SIGTERM, "never"),
                                          (signal.SIGINT, "deviated")])
def test_signal_during_outage_restores_tunnel(healthy_lab, tmp_path, sig, rollback):
    journal_path = tmp_path / "j.json"
    env = dict(os.environ, DRPOC_ARCHIVE_DIR=str(tmp_path / "archive"))
    proc = subprocess.Popen(chaos_cmd("vpn_outage", journal_path, "outage_seconds:float=60",
                                      "max_outage_seconds:float=90", rollback=rollback),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    fault_at = _wait_fault()
    time.sleep(5)  # in the middle of the outage: writes acknowledged, replica disconnected
    proc.send_signal(sig)
    stderr = proc.communicate(timeout=120)[1]
    assert time.monotonic() - fault_at < 90 + 15
    assert tunnel_up_both(), stderr[-2000:]
    journal = json.loads(journal_path.read_text())
    d = journal["drpoc"]
    assert journal["status"] == "interrupted" and proc.returncode == 1
    assert d["verdict"]["status"] == "aborted"
    assert d["safety"]["restore"]["forced"] is True
    assert d["safety"]["deadman"]["disarmed"] is True and d["safety"]["lock"]["released"] is True
    assert d["metrics"]["lost_writes"] == 0
    assert_no_write_lost()


def test_sigkill_dead_mans_switch_restores_tunnel(healthy_lab, tmp_path):
    max_outage = 15
    # an outage longer than the switch allows: the feasibility check would refuse it, so it only warns here
    proc = subprocess.Popen(chaos_cmd("vpn_outage", tmp_path / "j.json", "outage_seconds:float=120",
                                      f"max_outage_seconds:float={max_outage}", "feasibility=warn"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                            env=dict(os.environ, DRPOC_ARCHIVE_DIR=str(tmp_path / "archive")))
    fault_at = _wait_fault()
    time.sleep(3)
    proc.kill()
    proc.wait(timeout=10)
    deadline = fault_at + max_outage + 15
    while not tunnel_up_both():
        assert time.monotonic() < deadline, "the dead-man's switch did not bring the tunnel back"
        time.sleep(0.5)
    print(f"tunnel back {time.monotonic() - fault_at:.1f}s after the fault (max_outage {max_outage}s)",
          file=sys.stderr)
    records = on("aws-vpn", "sh", "-c", "cat /run/drpoc-deadman.d/*", check=False).stdout
    assert "fired " in records and "restored " in records, records
    deadline = time.monotonic() + 10
    while on("aws-vpn", "test", "-d", "/run/drpoc-drill.lock", check=False).returncode == 0:
        assert time.monotonic() < deadline, "the switch did not release the drill lock"
        time.sleep(0.2)
    assert_no_write_lost()
    # `drpoc recover` archives the killed drill as died (with what its switch did) and is safe to run twice
    archive = tmp_path / "archive"
    for out in recover_twice(archive):
        # the switch brought the tunnel back: recover finds nothing to do there
        assert "tunnel onprem-aws: already up" in out, out
    journals = [json.loads(p.read_text()) for p in archive.glob("*.json") if not p.name.endswith(".intent.json")]
    assert [j["drpoc"]["verdict"]["status"] for j in journals] == ["died"]
    died = journals[0]["drpoc"]["died"]
    assert died["fault_injected"] is True
    assert died["last_step"] in ("replica-loses-source-connection", "write-rows-during-outage", "hold-outage")
    assert died["deadman"]["fired"] is True and died["deadman"]["restored_at"]
    verify = subprocess.run(DRPOC + ["verify", str(archive)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_no_secret_in_any_journal_report_or_log(healthy_lab, tmp_path):
    """The lab's passwords, PSK and private key appear nowhere a drill writes: journals (as run and archived),
    the review report, Chaos Toolkit's log, the lab's own logs."""
    journal = tmp_path / "j.json"
    env = dict(os.environ, DRPOC_ARCHIVE_DIR=str(tmp_path / "archive"))
    cmd = [c for c in chaos_cmd("vpn_outage", journal) if c != "--no-log-file"]
    r = subprocess.run(cmd[:1] + ["--verbose"] + cmd[1:], capture_output=True, text=True, timeout=300, env=env,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    review = subprocess.run(DRPOC + ["review", str(tmp_path / "archive"), "--out", str(tmp_path / "reports")],
                            capture_output=True, text=True, timeout=120)
    assert review.returncode == 0, review.stdout + review.stderr
    p = Paths()
    secrets = {name: (p.secrets / name).read_text().strip() for name in ("mysql_password", "repl_password", "psk")}
    key_lines = [line for line in p.client_key.read_text().splitlines() if not line.startswith("-----")]
    secrets.update({f"private key line {i}": line for i, line in enumerate(key_lines) if len(line) >= 16})
    texts = {"chaos stdout": r.stdout, "chaos stderr": r.stderr, "review output": review.stdout + review.stderr}
    files = [journal, tmp_path / "chaostoolkit.log", *(tmp_path / "archive").iterdir(),
             *(tmp_path / "reports").iterdir(), *p.run.glob("*.log")]
    assert (tmp_path / "chaostoolkit.log").exists()
    for f in files:
        texts[str(f)] = f.read_text(errors="replace")
    for host in ("aws-vpn", "onprem-vpn"):
        texts[f"charon log on {host}"] = on(host, "cat", "/run/charon.log", check=False).stdout
    for host in ("aws-db", "onprem-db"):
        texts[f"MariaDB error log on {host}"] = (p.datadir(host) / "error.log").read_text(errors="replace")
    assert len(texts) > 10
    for where, text in texts.items():
        for name, value in secrets.items():
            assert value not in text, f"{name} found in {where}"


def test_deviated_run_is_failed_and_the_control_restores_the_tunnel(healthy_lab, tmp_path):
    """IKE blocked both ways on the WAN: the seed's recovery cannot succeed within its 3 s, the steady state deviates
    after the method; the run fails — and, with rollbacks off, the control keeps restoring until the block lapses
    and the tunnel is back."""
    from drpoc_chaos.lab.faults import block_inbound_ike, unblock_inbound_ike
    cfg = {"inventory": str(Paths().inventory)}
    block_inbound_ike("aws", "onprem", seconds=25, configuration=cfg)
    block_inbound_ike("onprem", "aws", seconds=25, configuration=cfg)
    try:
        # rollbacks never played: restoring is the control's job alone
        # (timeouts shorter than the replica can meet on purpose: the feasibility check only warns)
        r, journal = run_drill(tmp_path, "vpn_outage", "recovery_timeout_seconds:float=3", "outage_seconds:float=0",
                               "catch_up_timeout_seconds:float=3", "feasibility=warn", rollback="never")
    finally:
        unblock_inbound_ike(configuration=cfg)
    d = journal["drpoc"]
    assert r.returncode == 1 and journal["deviated"] is True and journal["status"] == "failed"
    assert d["verdict"]["status"] == "failed"
    assert any(x.startswith("activity 'recover-tunnel-in-seed-order' failed: tunnel onprem-aws not back")
               for x in d["verdict"]["reasons"])
    assert any(x.startswith("steady state deviated after the method") for x in d["verdict"]["reasons"])
    assert journal["rollbacks"] == []
    assert d["safety"]["restore"]["forced"] is True and d["safety"]["restore"]["replica"] in ("running", "restarted")
    assert tunnel_up_both()
    assert d["metrics"]["lost_writes"] == 0
    assert_no_write_lost()
