"""`drpoc schedule up` → `drpoc drill now --wait` → `drpoc schedule down` for real: a `prefect server start`, the
deployments of flows/prefect.yaml, a process worker, and the weekly drill run by the worker against the lab.
On a private port and state directory, so a scheduler someone runs on :4200 is not touched."""
from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from drpoc_chaos import scheduling as sch
from drpoc_chaos.scheduling import server as sch_server

from .conftest import NOT_STARTED, wait_lab_idle

pytestmark = pytest.mark.flows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_schedule_up_drill_now_schedule_down(lab_for_flows, tmp_path):
    port, state_dir, archive = free_port(), tmp_path / "prefect", tmp_path / "journal"
    msgs: list[str] = []
    t0 = time.monotonic()
    try:
        up = sch.schedule_up(port=port, state_dir=state_dir, worker_query_seconds=2, timeout=120, out=msgs.append)
        assert up["ui_url"] == f"http://127.0.0.1:{port}" and msgs[-1].startswith(f"Prefect UI: {up['ui_url']}")
        t_up = time.monotonic() - t0
        assert httpx.get(up["ui_url"], timeout=10).status_code == 200          # the UI is served, offline
        server = json.loads((state_dir / "pids" / "server.json").read_text())
        worker = json.loads((state_dir / "pids" / "worker.json").read_text())
        assert server["pid"] == up["server_pid"] and worker["pid"] == up["worker_pid"]

        st = sch.schedule_status(state_dir=state_dir)
        assert st["healthy"] and st["server"]["running"] and st["worker"]["running"]
        deps = {d["name"]: d for d in st["deployments"]}
        assert deps["dr-drill/weekly-drill"]["schedules"] == ["0 3 * * 1 (UTC)"]
        assert len(deps) == 3

        # a second `up` finds everything running and only re-applies the deployments
        again = sch.schedule_up(port=port, state_dir=state_dir, timeout=120, out=msgs.append)
        assert again["server_pid"] == up["server_pid"] and again["worker_pid"] == up["worker_pid"]

        for _ in range(3):
            assert wait_lab_idle(), "another drill kept the lab busy for 3 minutes"
            run = sch.drill_now(api_url=up["api_url"], parameters={"archive_dir": str(archive)}, wait=True,
                                timeout=150, out=msgs.append)
            if not any(t in str(run.get("message")) for t in NOT_STARTED):
                break
            time.sleep(30)
        assert run["state"] == "COMPLETED", (run, "\n".join(msgs),
                                             sch_server._tail(state_dir / "logs" / "worker.log", 40))
        # meanwhile the server's scheduler service has planned the next runs of every deployment
        deps = {d["name"]: d for d in sch.schedule_status(state_dir=state_dir)["deployments"]}
        assert all(d["next_run"] for d in deps.values()), deps
        assert deps["dr-drill/weekly-drill"]["next_run"].startswith(
            sch.next_fire_times("0 3 * * 1")[0].strftime("%Y-%m-%dT03:00:00"))
        assert deps["dr-drill/weekly-drill"]["last_run"].startswith("Completed")
        # the drill's journal (its intent, written before the fault, sits beside it)
        archived = [p for p in archive.glob("*_vpn_outage_*.json") if not p.name.endswith(".intent.json")]
        assert len(list(archive.glob("*_vpn_outage_*.intent.json"))) == 1
        assert len(archived) == 1 and json.loads(archived[0].read_text())["drpoc"]["verdict"]["passed"]
        t_drill = time.monotonic() - t0 - t_up
    finally:
        down = sch.schedule_down(state_dir=state_dir, out=msgs.append)
    assert down == {"worker": "stopped", "server": "stopped"}, msgs
    assert not (state_dir / "pids" / "server.json").exists() and not (state_dir / "pids" / "worker.json").exists()
    assert not sch.port_in_use(port) and not sch.record_alive(server) and not sch.record_alive(worker)
    print(f"schedule up {t_up:.1f} s, drill now {t_drill:.1f} s, total {time.monotonic() - t0:.1f} s")
