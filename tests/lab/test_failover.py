"""The site failover drill on the real lab: experiments/site_failover.yaml passes in every loss mode (crash, freeze,
isolate) and ends where it started; `drpoc recover` finishes a failover interrupted at every step — in process after
each step, and after `chaos run` itself is killed mid-failover; fences hold against the drill's own writes; a
failover the estate cannot finish is refused before anything is touched."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from drpoc_chaos.drill.recover import recover
from drpoc_chaos.inventory import load_inventory
from drpoc_chaos.lab import faults
from drpoc_chaos.replication import probes as rep_probes
from drpoc_chaos.services import context as services_context
from drpoc_chaos.services import failover, gateway, replica, topology, writer
from drpoc_chaos.services.errors import StepFailed
from drpoc_chaos.vpn import probes as vpn_probes

from .support import CFG, INVENTORY, variant
from .test_drills import chaos_cmd, run_drill

pytestmark = pytest.mark.lab


def replica_tuning() -> dict:
    services_context.close_all()
    inv = load_inventory(INVENTORY)
    return {k: v for k, v in replica.read_settings(inv).items() if k in ("connect_retry", "heartbeat_period")}


@pytest.fixture
def tuning(ready) -> dict:
    """The replica's own connect retry and heartbeat before the test: a failover must give them back."""
    return replica_tuning()


def assert_original_topology(tuning: dict) -> None:
    """AWS the only writer, on-prem replicating from it and in step, the tunnel up, no failover left recorded, the
    replica's own tuning as it was."""
    inv = load_inventory(INVENTORY)
    services_context.close_all()
    assert topology.writers(inv) == {"source": True, "replica": False, "writers": 1, "single": True}
    assert replica.status_of(inv.source, inv) is None  # the source replicates from nobody
    assert vpn_probes.tunnel_established("fault", configuration=CFG)
    assert vpn_probes.tunnel_established("peer", configuration=CFG)
    replica.catch_up(inv, timeout=30)
    assert rep_probes.replica_threads_running(configuration=CFG) is True
    assert rep_probes.ping_rows_match(configuration=CFG) is True
    assert failover.read_record(inv) is None
    assert replica_tuning() == tuning  # the re-points kept the replica's connect retry and heartbeat


@pytest.mark.parametrize("loss", ["crash", "freeze", "isolate"])
def test_site_failover_drill_passes_and_returns(ready, tuning, tmp_path, loss):
    r, journal = run_drill(tmp_path, "site_failover", f"loss={loss}")
    d = journal["drpoc"]
    assert r.returncode == 0 and d["verdict"]["passed"] is True, (d["verdict"], d["safety"]["notes"])
    names = [e["name"] for e in d["events"]]
    for milestone in ("fault_injected", "site_lost_detected", "drained", "promoted", "first_write_new", "fenced",
                      "errant_found", "switchover_started", "switched_back", "first_write_back"):
        assert milestone in names, (milestone, names)
    assert ("reseeded" in names) != ("repointed" in names)
    t = {n: next(e["t"] for e in d["events"] if e["name"] == n) for n in names}
    f = d["metrics"]["failover"]
    detection = t["site_lost_detected"] - t["fault_injected"]
    assert f["rto_seconds"] is not None and f["rto_seconds"] <= detection + 2.5, (f, detection)
    assert f["switchover_window_seconds"] is not None and f["switchover_window_seconds"] <= 1.0, f
    # RPO counted: whatever was lost is named, within max_lost_writes, and the old primary's errant transactions
    # account for it (each drill write is one transaction)
    assert f["lost_count"] == len(d["writes"]["lost"]) <= 5 and f["errant_cover_lost"] is True, f
    assert ("reseeded" in names) == (f["errant"] > 0)
    assert d["writes"]["unexpected"] == [] and d["writes"]["duplicated"] == []
    assert d["roles"]["failover"]["returned_to"] == d["roles"]["source"]
    assert not any(s.get("writers") == 2 for s in d["timeline"]["samples"])
    assert any(p["verdict"] == "equal" for p in d["parity"][1:])  # the written tables after the return
    assert_original_topology(tuning)


# --- drpoc recover from every step --------------------------------------------------------------------------------

POINTS = ["lost", "detected", "stopped", "promoted", "written", "fenced", "reconciled", "switching", "switched"]


def _write_on_source_only(inv, n: int) -> list[str]:
    """Acknowledged writes the replica can never receive (the tunnel is down): the errant transactions a crash
    leaves on the old primary."""
    msgs = [f"drpoc:errant-test:{time.time():.6f}:{i}" for i in range(n)]
    for m in msgs:
        services_context.sql(inv.source, inv, "INSERT INTO testdb.ping (msg) VALUES (%s)", (m,))
    return msgs


def _run_until(point: str) -> dict:
    """The drill's steps through services.failover, stopped after `point` (what a killed orchestrator leaves)."""
    inv = load_inventory(INVENTORY)
    run = f"test{POINTS.index(point)}"
    out: dict = {}
    failover.check_ready(inv)
    failover.record(inv, run, "lost")
    gateway.take_down(inv, inv.drill.fault_site, fault=False)
    out["errant_msgs"] = _write_on_source_only(inv, 2)
    faults.lose_source(mode="crash", configuration=CFG)
    services_context.close_all()
    if point == "lost":
        return out
    failover.wait_site_lost(inv, timeout=30)
    if point == "detected":
        return out
    if point == "stopped":  # killed between STOP REPLICA and the promotion: the fork recorded, nothing promoted
        services_context.sql(inv.replica, inv, replica.dialect_of(inv.replica, inv).stop)
        failover.record(inv, run, "promoting", topology.applied_position(inv.replica, inv))
        return out
    failover.promote(inv, run, drain_timeout=10)
    if point == "promoted":
        return out
    burst = writer.write_burst(inv, count=5, rate=100, phase="new:test", target="replica")
    assert burst["acknowledged"] == 5, burst
    out["new_ids"] = burst["ids"]
    if point == "written":
        return out
    failover.bring_back_fenced(inv, run, faults.return_lost_source, tunnel_timeout=60)
    if point == "fenced":
        with pytest.raises(StepFailed, match="errant transaction"):  # reseed: refuse stops with it fenced
            failover.reconcile(inv, run, "refuse", 30)
        assert topology.writers(inv)["source"] is False
        return out
    failover.reconcile(inv, run, "auto", 60)
    if point == "reconciled":
        return out
    rec = failover.read_record(inv)
    failover.record(inv, run, "switching", rec["fork"], rec["settings"])
    topology.fence(inv.replica, inv)
    if point == "switching":
        return out
    topology.wait_applied(inv.source, topology.binlog_position(inv.replica, inv), inv, 30)
    topology.promote(inv.source, inv)
    failover.record(inv, run, "switched", rec["fork"], rec["settings"])
    return out  # "switched": AWS promoted, on-prem not yet re-pointed under it


@pytest.mark.parametrize("point", POINTS)
def test_drpoc_recover_finishes_a_failover_interrupted_after_every_step(ready, tuning, tmp_path, point):
    try:
        out = _run_until(point)
    finally:
        services_context.close_all()
        said: list[str] = []
        result = recover(INVENTORY, timeout=90, archive_dir=tmp_path / "archive", say=said.append,
                         undo_emulated_faults=faults.undo_lab_faults, bring_back_source=faults.return_lost_source)
    assert result["ok"] is True, (result, said)
    assert_original_topology(tuning)
    inv = load_inventory(INVENTORY)
    rows = {r["msg"] for r in services_context.sql(inv.replica, inv, "SELECT msg FROM testdb.ping WHERE msg LIKE %s",
                                                   ("drpoc:errant-test:%",))}
    if point in ("lost", "detected", "stopped", "promoted"):
        # nothing was written on the replica (promoted or not): undoing costs nothing, so the source's writes were
        # never lost — they reach the replica once it is back
        assert set(out["errant_msgs"]) <= rows
    else:
        # promoted and written to: the old primary's errant writes were replaced by the new primary's history
        assert not set(out["errant_msgs"]) & rows
    if "new_ids" in out:
        got = services_context.sql(inv.source, inv, "SELECT COUNT(*) AS n FROM testdb.ping "
                                   "WHERE id IN (%s,%s,%s,%s,%s)", tuple(out["new_ids"]))[0]["n"]
        assert got == 5  # what the promoted replica acknowledged is on the original primary again
    # safe to re-run: nothing left to do
    again = recover(INVENTORY, timeout=60, archive_dir=tmp_path / "archive", say=lambda _: None,
                    undo_emulated_faults=faults.undo_lab_faults, bring_back_source=faults.return_lost_source)
    assert again["ok"] is True and "failover" not in again


def test_a_lost_record_stops_recover_with_the_old_primary_fenced(ready, tuning, tmp_path):
    """The peer gateway rebooted mid-failover (/run is gone, and the fork with it): recover must not guess which
    writes to throw away. It fences the old primary, leaves the promoted one the only writer and says what to
    compare; given the record back, it finishes."""
    inv = load_inventory(INVENTORY)
    rec = None
    try:
        _run_until("written")
        rec = failover.read_record(inv)
        failover.forget_record(inv)  # what a reboot of the gateway does to /run
        services_context.close_all()
        said: list[str] = []
        out = recover(INVENTORY, timeout=90, archive_dir=tmp_path / "archive", say=said.append,
                      undo_emulated_faults=faults.undo_lab_faults, bring_back_source=faults.return_lost_source)
        assert out["ok"] is False and "without the fork" in out["failover"], (out, said)
        services_context.close_all()
        assert topology.writers(inv) == {"source": False, "replica": True, "writers": 1, "single": True}
    finally:
        services_context.close_all()
        if rec is not None:
            failover.record(inv, rec["run"], "promoted", rec["fork"], rec["settings"])  # the record, as if restored
        out = recover(INVENTORY, timeout=90, archive_dir=tmp_path / "archive", say=lambda _: None,
                      undo_emulated_faults=faults.undo_lab_faults, bring_back_source=faults.return_lost_source)
    assert out["ok"] is True, out
    assert_original_topology(tuning)


def _record_step() -> str | None:
    services_context.close_all()
    try:
        rec = failover.read_record(load_inventory(INVENTORY))
    except Exception:  # noqa: BLE001 — the gateway busy: ask again
        return None
    return rec["step"] if rec else None


def test_chaos_run_killed_mid_failover_is_finished_by_drpoc_recover(ready, tuning, tmp_path):
    journal = tmp_path / "site_failover.json"
    env = dict(os.environ, DRPOC_ARCHIVE_DIR=str(tmp_path / "archive"))
    proc = subprocess.Popen(chaos_cmd("site_failover", journal, "loss=crash", "failover_hold_seconds:float=30"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while _record_step() != "promoted" and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert _record_step() == "promoted" and proc.poll() is None, "the drill never reached the promotion"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # the orchestrator dies: no control, no rollback runs
        proc.wait(timeout=30)
    r = subprocess.run([sys.executable, "-m", "drpoc_chaos.cli", "recover", "--archive-dir", str(tmp_path / "archive"),
                        "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["failover"]["ok"] is True and "reconcile-source" in out["failover"]["steps"], out
    assert out["died"], out  # the killed drill is archived as died
    assert_original_topology(tuning)


def test_a_real_estates_test_failover_loses_no_write(ready, tuning, tmp_path, monkeypatch):
    """Outside the lab only `isolate` runs, as a test failover: the source is fenced and drained into the replica
    before the tunnel goes down, so nothing is errant and the old primary is re-pointed, never re-seeded. Run here
    by making the lab look like any estate to the failover actions."""
    from drpoc_chaos.failover import actions
    monkeypatch.setattr(actions.lab_faults, "is_lab", lambda inv: False)
    inv = load_inventory(INVENTORY)
    from chaoslib.exceptions import ActivityFailed
    with pytest.raises(ActivityFailed, match="only the lab emulates"):
        actions.lose_site(loss="crash", configuration=CFG)
    try:
        lost = actions.lose_site(loss="isolate", configuration=CFG)
        assert lost["source"] == {"mode": "isolate", "fenced": "aws-db"}
        assert topology.writers(inv)["source"] is False
        assert actions.wait_site_lost(timeout=30, configuration=CFG)["detected"] is True
        actions.promote_replica(drain_timeout=10, configuration=CFG)
        burst = writer.write_burst(inv, count=3, rate=50, phase="new:estate", target="replica")
        assert burst["acknowledged"] == 3
        actions.bring_back_site(timeout=60, configuration=CFG)
        rec = actions.reconcile_old_primary(reseed="refuse", timeout=60, configuration=CFG)
        assert rec["errant"] == [] and rec["action"] == "repointed"
        actions.switch_back(timeout=30, configuration=CFG)
    finally:
        services_context.close_all()
        out = recover(INVENTORY, timeout=90, archive_dir=tmp_path / "archive", say=lambda _: None,
                      undo_emulated_faults=faults.undo_lab_faults, bring_back_source=faults.return_lost_source)
    assert out["ok"] and "failover" not in out
    assert_original_topology(tuning)


# --- fences and refusals ---------------------------------------------------------------------------------------

def test_a_fenced_server_refuses_the_drills_own_writes(ready, tuning):
    """The drill's user holds READ_ONLY ADMIN on the lab (tests/fixtures/mariadb-10.11-read-only-admin): read_only
    alone would let its writer and heartbeat through. Both check the fence themselves."""
    inv = load_inventory(INVENTORY)
    burst = writer.write_burst(inv, count=2, rate=50, phase="fenced", target="replica")
    assert burst["acknowledged"] == 0 and "1290" in (burst["first_error"] or ""), burst
    before = services_context.sql(inv.source, inv, "SELECT @@GLOBAL.gtid_binlog_pos AS p")[0]["p"]
    topology.fence(inv.source, inv)
    try:
        replica.write_heartbeat(inv)
        assert services_context.sql(inv.source, inv, "SELECT @@GLOBAL.gtid_binlog_pos AS p")[0]["p"] == before
    finally:
        topology.unfence(inv.source, inv)
    assert_original_topology(tuning)


def test_a_failover_the_estate_cannot_finish_is_refused_before_anything_is_touched(ready, tuning, tmp_path):
    def no_replication_account(data):
        data.pop("replication", None)

    cfg = variant(tmp_path, "no-repl", no_replication_account)
    from chaoslib.exceptions import ActivityFailed

    from drpoc_chaos.failover import actions
    with pytest.raises(ActivityFailed, match="replication account"):
        actions.lose_site(loss="crash", configuration=cfg)
    with pytest.raises(ActivityFailed, match="loss must be one of"):
        actions.lose_site(loss="--help", configuration=CFG)

    def fault_on_the_replica_site(data):
        data["drill"]["fault_site"], data["drill"]["peer_site"] = "onprem", "aws"

    with pytest.raises(ActivityFailed, match="loses the source's site"):
        actions.lose_site(configuration=variant(tmp_path, "wrong-site", fault_on_the_replica_site))
    assert_original_topology(tuning)


def test_a_refused_fault_stops_every_later_step_of_the_drill(ready, tuning, tmp_path):
    """Chaos Toolkit goes on with the method after a failed action: a refused `lose_site` must not be followed by a
    promotion, a fence or a re-seed of the healthy source (each later step checks this drill's failover record)."""
    r, journal = run_drill(tmp_path, "site_failover", "loss=bogus")
    d = journal["drpoc"]
    assert r.returncode != 0 and not d["verdict"]["passed"]
    runs = {run["activity"]["name"]: run for run in journal["run"]}
    for step in ("drain-and-promote-the-replica", "lost-site-returns-fenced", "old-primary-repointed-or-reseeded",
                 "planned-switchover-back"):
        assert runs[step]["status"] == "failed" and "nothing was" in " ".join(runs[step]["exception"]), step
    names = [e["name"] for e in d["events"]]
    assert not {"promoted", "fenced", "reseeded", "repointed", "switched_back"} & set(names), names
    assert all(s.get("writers") in (1, None) for s in d["timeline"]["samples"])
    assert_original_topology(tuning)
