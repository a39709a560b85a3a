"""`dr-campaign` for real: a Prefect server, two work pools with a process worker each, and a campaign across the
three spokes of a fleet lab (`drpoc lab up --sites 3`) — drills of different sites run in different worker
processes, at most two at once and never two on one gateway; a failing campaign halts and reports the rest as not
run. Private port and state directory; the workers and the server are stopped by their recorded PIDs."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import yaml

from drpoc_chaos import scheduling as sch
from drpoc_chaos.lab.topology import LabSettings

pytestmark = pytest.mark.flows

POOLS = {"onprem": "drpoc-site-a", "onprem2": "drpoc-site-b", "onprem3": "drpoc-site-a"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    """A 3-spoke lab, its inventory given a work pool per spoke site; the seed's lab again afterwards."""
    result = lab.up(LabSettings(sites=3))
    assert result["healthy"], result["problems"]
    inv = yaml.safe_load(lab.paths.inventory.read_text())
    for site, pool in POOLS.items():
        inv["sites"][site]["work_pool"] = pool
    path = tmp_path_factory.mktemp("fleet") / "inventory.yaml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    try:
        yield path
    finally:
        lab.up()


@pytest.fixture(scope="module")
def scheduler(fleet, tmp_path_factory):
    import prefect.settings as ps
    state = tmp_path_factory.mktemp("prefect")
    port = free_port()
    up = sch.schedule_up(port=port, state_dir=state, worker=False, alerts=False, timeout=180, out=lambda m: None)
    workers = {}
    try:
        for pool in sorted(set(POOLS.values())):
            workers[pool] = sch.start_pool_worker(pool, api_url=up["api_url"], state_dir=state)
        with ps.temporary_settings(updates={ps.PREFECT_API_URL: up["api_url"]}):
            yield {"api_url": up["api_url"], "state": state, "workers": workers}
    finally:
        _flush_prefect_logs()
        for pool in workers:
            sch.stop_pool_worker(pool, state_dir=state)
        sch.schedule_down(state_dir=state, out=lambda m: None)


def _flush_prefect_logs() -> None:
    """Send the flow's queued logs while the server is still up (else they are retried at exit, minutes long)."""
    from prefect.logging.handlers import APILogWorker
    try:
        APILogWorker.drain_all(timeout=5)
    except Exception:  # noqa: BLE001 — a log line is not evidence
        pass


def _campaign(**kw):
    from campaign import dr_campaign
    return dr_campaign(return_state=True, **kw)


def test_a_campaign_runs_every_spoke_through_two_workers_two_at_a_time(fleet, scheduler, tmp_path):
    from prefect import get_client
    archive = tmp_path / "journal"
    t0 = time.monotonic()
    state = _campaign(scenario="experiments/vpn_outage.yaml", inventory=str(fleet), selection="all",
                      max_parallel=2, archive_dir=str(archive))
    wall = time.monotonic() - t0
    files = list((archive / "campaigns").glob("*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert state.is_completed(), (state.message, json.dumps(record, indent=1)[:3000])
    assert record["chosen"] == ["onprem", "onprem2", "onprem3"] and not record["halted"]
    assert [o["state"] for o in record["outcomes"]] == ["passed"] * 3
    # each drill ran on its site's pool, in that pool's worker process
    with get_client(sync_client=True) as client:
        runs = {o["pair"]: client.read_flow_run(o["flow_run_id"]) for o in record["outcomes"]}
    for pair, run in runs.items():
        assert run.work_pool_name == POOLS[pair], (pair, run.work_pool_name)
    logs = {pool: (Path(scheduler["state"]) / "logs" / f"worker-{pool}.log").read_text()
            for pool in scheduler["workers"]}
    for pair, run in runs.items():
        assert str(run.id) in logs[POOLS[pair]] and all(str(run.id) not in text for pool, text in logs.items()
                                                        if pool != POOLS[pair]), pair
    # every drill's journal names its pair; none hit another pair; two ran at once
    journals = {}
    for o in record["outcomes"]:
        j = json.loads(Path(o["journal"]).read_text())["drpoc"]
        journals[o["pair"]] = j
        assert j["pair"] == o["pair"] and j["verdict"]["passed"]
        assert j["blast_radius"]["ok"] and j["blast_radius"]["leaks"] == []
        assert sorted(j["blast_radius"]["watched"] + list(j["blast_radius"]["skipped"])) == \
            sorted(p for p in POOLS if p != o["pair"])
    spans = sorted((runs[p].start_time, runs[p].end_time) for p in runs)
    assert any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)), "no two drills overlapped"
    print(f"campaign of 3 pairs at parallelism 2: {wall:.1f} s")


def test_a_failing_campaign_halts_and_reports_the_rest_not_run(fleet, scheduler, tmp_path):
    archive = tmp_path / "journal"
    # an RTO objective no drill can meet: the first drill fails, the campaign stops there
    state = _campaign(scenario="experiments/vpn_outage.yaml", inventory=str(fleet),
                      selection="list:onprem3,onprem,onprem2", max_parallel=1, archive_dir=str(archive),
                      objectives={"objective_rto_seconds": 0.001})
    assert state.is_failed()
    record = json.loads(next((archive / "campaigns").glob("*.json")).read_text())
    assert record["halted"] and "onprem3" in record["halt_reason"]
    assert [(o["pair"], o["state"]) for o in record["outcomes"]] == [
        ("onprem3", "failed"), ("onprem", "not run: campaign halted"), ("onprem2", "not run: campaign halted")]
    assert "not run: campaign halted" in str(state.message) or "did not pass" in str(state.message)
