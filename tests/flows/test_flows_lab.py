"""The flows against the real lab, through the Prefect test harness: artifacts read back with the client."""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from .conftest import (
    check_when_idle,
    lab_exec,
    lab_status,
    restore_tunnel_seed_order,
    run_with_lock_retry,
    wait_lab_idle,
)

pytestmark = pytest.mark.flows
LAB_INVENTORY = Path("/var/lib/drpoc-lab/inventory.yaml")


def artifacts_of(client, state) -> dict:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    arts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[
        state.state_details.flow_run_id])))
    return {a.key: a for a in arts}


def flow_run_logs(client, state) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker
    APILogWorker.drain_all(timeout=10)
    logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[
        state.state_details.flow_run_id])), limit=200)
    return "\n".join(log.message for log in logs)


def test_dr_drill_archives_the_journal_and_publishes_three_artifacts(lab_for_flows, prefect_client, tmp_path):
    import drills
    archive = tmp_path / "journal"
    state = run_with_lock_retry(lambda: drills.dr_drill(archive_dir=str(archive), return_state=True))
    assert state.is_completed(), state.message
    [(result)] = state.result()
    archived = Path(result["archived_as"])
    assert archived.parent == archive and archived.exists()
    journal = json.loads(archived.read_text())
    assert journal["drpoc"]["verdict"]["passed"] and journal["status"] == "completed"
    assert archived.name in (archive / "ledger.jsonl").read_text()     # recorded in the hash-chained ledger

    arts = artifacts_of(prefect_client, state)
    assert set(arts) == {"drpoc-vpn-outage-summary", "drpoc-vpn-outage-metrics", "drpoc-vpn-outage-journal"}
    summary = arts["drpoc-vpn-outage-summary"]
    assert summary.type == "markdown" and "# DR drill PASSED: vpn_outage.yaml" in summary.data
    assert journal["drpoc"]["run_id"] in summary.data
    table = arts["drpoc-vpn-outage-metrics"]
    assert table.type == "table"
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    objectives = [r for r in rows if r["objective"] is not None]
    assert len(objectives) >= 2 and all(r["passed"] for r in objectives)
    assert any(r["metric"] == "lost_writes" and r["achieved"] == 0 for r in rows)
    link = arts["drpoc-vpn-outage-journal"]      # Prefect 3.9 stores a link artifact as markdown "[text](url)"
    assert link.data == f"[{archived.name}]({archived.absolute().as_uri()})"

    # the drill held the per-target concurrency slot (limit 1) while it ran, and gave it back
    gcl = prefect_client.read_global_concurrency_limit_by_name("drpoc-target-lab")
    assert gcl.limit == 1 and gcl.active_slots == 0


def test_an_impossible_objective_makes_the_flow_run_failed(lab_for_flows, prefect_client, tmp_path):
    import drills
    state = run_with_lock_retry(lambda: drills.dr_drill(
        archive_dir=str(tmp_path / "journal"), objectives={"objective_rto_seconds": 0.0001}, return_state=True))
    assert state.is_failed()
    assert "1 drill(s) did not pass" in state.message and "vpn_outage.yaml" in state.message
    assert "objective missed" in state.message and "0.0001" in state.message
    assert prefect_client.read_flow_run(state.state_details.flow_run_id).state.type.value == "FAILED"
    arts = artifacts_of(prefect_client, state)
    assert "NOT PASSED" in arts["drpoc-vpn-outage-summary"].data   # the evidence is kept for a failure too
    assert "drpoc-vpn-outage-journal" in arts and "drpoc-vpn-outage-metrics" in arts
    assert lab_status()["healthy"], "the drill's control must leave the lab healthy"


def test_steady_state_check_gets_the_mysql_password_from_a_secret_block(lab_for_flows, prefect_client, tmp_path):
    """secret_env: a Prefect Secret block resolved into the env of the chaos subprocess only, never logged."""
    import drills
    from prefect.blocks.system import Secret
    inv = yaml.safe_load(LAB_INVENTORY.read_text())
    password = Path(inv["mysql_defaults"]["password"]["file"]).read_text().strip()
    inv["mysql_defaults"]["password"] = {"env": "DRPOC_TEST_MYSQL_PASSWORD"}
    inv_path = tmp_path / "inventory.yaml"
    inv_path.write_text(yaml.safe_dump(inv))
    Secret(value=password).save("drpoc-test-mysql-password", overwrite=True)
    assert "DRPOC_TEST_MYSQL_PASSWORD" not in os.environ

    state = check_when_idle(lambda: drills.steady_state_check(
        inventory=str(inv_path), return_state=True,
        secret_env={"DRPOC_TEST_MYSQL_PASSWORD": "drpoc-test-mysql-password"}))
    assert state.is_completed(), state.message
    assert "DRPOC_TEST_MYSQL_PASSWORD" not in os.environ
    logs = flow_run_logs(prefect_client, state)
    assert "Steady state hypothesis is met" in logs and password not in logs
    md = artifacts_of(prefect_client, state)["drpoc-steady-state-vpn-outage"]
    assert "# DR posture healthy" in md.data and password not in md.data

    # without the secret the same inventory cannot reach the databases: the block is what made it work
    state = check_when_idle(lambda: drills.steady_state_check(inventory=str(inv_path), return_state=True))
    assert state.is_failed() and "replica-io-and-sql-threads-running" in state.message
    assert "DRPOC_TEST_MYSQL_PASSWORD" in state.message          # the inventory names the variable it missed


def test_steady_state_check_fails_when_the_tunnel_is_down(lab_for_flows, prefect_client):
    import drills
    assert wait_lab_idle(), "another drill kept the lab busy for 3 minutes"
    try:
        down = lab_exec("aws-vpn", "ipsec", "down", "onprem-aws")
        assert down.returncode == 0, down.stderr
        state = drills.steady_state_check(return_state=True)
        assert state.is_failed()
        assert "PostureBroken: DR posture broken: fault-side-tunnel-established: returned False" in state.message
        assert "fault-side-tunnel-established" in state.message
        md = artifacts_of(prefect_client, state)["drpoc-steady-state-vpn-outage"]
        assert "# DR posture BROKEN" in md.data and "| fault-side-tunnel-established | **FAILED** |" in md.data
    finally:
        st = restore_tunnel_seed_order()
    assert st.get("healthy"), st.get("problems")


def test_a_run_that_starts_long_after_its_scheduled_time_is_skipped(prefect_client, tmp_path):
    """The guard reads the flow run's scheduled start time: a run scheduled 2 h ago is skipped (Cancelled, with a
    "skipped: late by N s" artifact) without touching the sites."""
    import drills
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled
    params = {"experiments": [str(tmp_path / "must-not-run.yaml")], "archive_dir": str(tmp_path),
              "max_lateness_seconds": 3600}
    scheduled = datetime.now(timezone.utc) - timedelta(hours=2)
    fr = prefect_client.create_flow_run(drills.dr_drill, parameters=params,
                                        state=Scheduled(scheduled_time=scheduled))
    state = run_flow(drills.dr_drill, flow_run=fr, parameters=params, return_type="state")
    assert state.is_cancelled(), state
    assert state.message.startswith("skipped: late by 72") and "max_lateness_seconds=3600" in state.message
    md = artifacts_of(prefect_client, state)["drpoc-dr-drill-skipped"]
    assert md.type == "markdown" and "skipped: late by" in md.data
    assert not list(tmp_path.glob("*.json"))
