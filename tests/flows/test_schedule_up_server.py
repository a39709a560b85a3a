"""`drpoc schedule up --no-worker` → status → up again → `drill now` → `schedule down` on a real `prefect server
start` on a free 127.0.0.1 port and a private state directory, without the lab: no worker is started, so the flow run
`drill now` creates stays Scheduled and nothing touches the sites. The deployments are applied by `prefect deploy`
and everything is read back through Prefect's client."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from drpoc_chaos import scheduling as sch

pytestmark = pytest.mark.flows
REPO = Path(__file__).resolve().parents[2]
DRPOC = str(Path(sys.executable).parent / "drpoc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_schedule_up_without_worker_applies_the_file_with_prefect_and_drill_now_creates_the_run(tmp_path):
    port, state_dir = free_port(), tmp_path / "prefect"
    assert port != sch.DEFAULT_PORT
    msgs: list[str] = []
    try:
        up = sch.schedule_up(port=port, state_dir=state_dir, worker=False, alerts=True, timeout=150,
                             out=msgs.append)
        assert up["api_url"] == f"http://127.0.0.1:{port}/api" and "worker_pid" not in up
        assert [line.split("  ")[0] for line in up["deployments"]] == [
            "dr-drill/weekly-drill", "steady-state-check/daily-steady-state", "dr-drill/monthly-drill-under-load"]
        assert up["alerts"]["status"] == "skipped"                 # no notification block on a new server
        assert "prefect --no-prompt deploy" in (state_dir / "logs" / "deploy.log").read_text()
        assert any(m.startswith("applying the deployments of ") and "(prefect deploy)" in m for m in msgs)

        again = sch.schedule_up(port=port, state_dir=state_dir, worker=False, alerts=False, timeout=150,
                                out=msgs.append)
        assert again["server_pid"] == up["server_pid"] and again["deployments"] == up["deployments"]

        st = sch.schedule_status(state_dir=state_dir)
        assert st["healthy"] and st["server"]["running"] and not st["worker"]["running"]
        deps = {d["name"]: d for d in st["deployments"]}
        assert len(deps) == 3 and deps["dr-drill/weekly-drill"]["schedules"] == ["0 3 * * 1 (UTC)"]

        p = subprocess.run([DRPOC, "schedule", "status", "--state-dir", str(state_dir), "--json"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 1                                   # healthy, but no worker
        assert {d["name"] for d in json.loads(p.stdout)["deployments"]} == set(deps)

        run = sch.drill_now(state_dir=state_dir, parameters={"archive_dir": str(tmp_path / "j")},
                            out=msgs.append)
        assert run["state"] == "SCHEDULED" and run["url"].startswith(f"http://127.0.0.1:{port}/runs/flow-run/")
        with sch.prefect_client(up["api_url"]) as client:
            fr = client.read_flow_run(run["flow_run_id"])
            assert "drill-now" in fr.tags
            assert client.read_deployment(fr.deployment_id).name == "weekly-drill"
            client.delete_flow_run(fr.id)                          # never run by a worker started later
    finally:
        down = sch.schedule_down(state_dir=state_dir, out=msgs.append)
    assert down["server"] == "stopped" and down["worker"] == "not recorded", msgs
    assert not sch.port_in_use(port)
