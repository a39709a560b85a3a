"""`drpoc drill now` and `drpoc schedule status` through Prefect's own client, on the test harness's server, and
Prefect's client retries (not ours) against a server that answers 503/504 a bounded number of times: a tiny proxy on
127.0.0.1 in front of the harness injects them. No lab, no worker: the flow runs created here stay Scheduled and are
deleted."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from drpoc_chaos import scheduling as sch
from drpoc_chaos.core.clock import wait_until

pytestmark = pytest.mark.flows
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def deployed(prefect_client):
    return sch.apply_deployments(sch.load_deployment_specs(REPO / "flows" / "prefect.yaml"), repo=REPO)


@pytest.fixture
def api_url(prefect_harness) -> str:
    import prefect.settings as ps
    return ps.PREFECT_API_URL.value()


def _delete_runs(client, ids) -> None:
    for i in ids:
        try:
            client.delete_flow_run(i)
        except Exception:  # noqa: BLE001
            pass


# ---------------------------------------------------------------------------------------------- drill now, status

def test_drill_now_creates_a_flow_run_of_the_named_deployment_through_the_client(prefect_client, deployed, api_url,
                                                                                  tmp_path):
    msgs: list[str] = []
    created: list[str] = []
    res = sch.drill_now("dr-drill/weekly-drill", api_url=api_url, state_dir=tmp_path,
                        parameters={"archive_dir": "/tmp/drpoc-j"}, out=msgs.append)
    created.append(res["flow_run_id"])
    try:
        run = prefect_client.read_flow_run(res["flow_run_id"])
        assert str(run.deployment_id) == deployed["dr-drill/weekly-drill"]
        assert "drill-now" in run.tags and run.parameters["archive_dir"] == "/tmp/drpoc-j"
        assert run.parameters["experiments"] == ["experiments/vpn_outage.yaml"]     # the deployment's defaults
        assert res["state"] == "SCHEDULED" and run.state.is_scheduled()
        assert msgs == [f"flow run {run.name} ({run.id}) created for dr-drill/weekly-drill: "
                        f"{api_url[:-4]}/runs/flow-run/{run.id}"]

        # --wait without a worker: followed through the client until the bound, then TIMEOUT (the run goes on)
        msgs.clear()
        waited = sch.drill_now("steady-state-check/daily-steady-state", api_url=api_url, wait=True, timeout=1.5,
                               poll=0.5, out=msgs.append)
        created.append(waited["flow_run_id"])
        assert waited["state"] == "TIMEOUT" and msgs[1] == "  Scheduled" and "had not ended after 1.5 s" in msgs[-1]
    finally:
        _delete_runs(prefect_client, created)


def test_drill_now_names_what_is_wrong(prefect_client, deployed, api_url):
    with pytest.raises(sch.SchedulingError, match="no deployment 'dr-drill/nope' on http://127.0.0.1:"):
        sch.drill_now("dr-drill/nope", api_url=api_url, out=lambda m: None)
    with pytest.raises(sch.SchedulingError, match="give it as FLOW/DEPLOYMENT"):
        sch.drill_now("weekly-drill", api_url=api_url, out=lambda m: None)
    with pytest.raises(sch.SchedulingError, match="could not create the flow run: .*max_lateness_seconds"):
        sch.drill_now(api_url=api_url, parameters={"max_lateness_seconds": "soon"}, out=lambda m: None)


def test_schedule_status_reads_deployments_through_the_client(prefect_client, deployed, api_url, tmp_path):
    st = sch.schedule_status(state_dir=tmp_path, api_url=api_url)
    assert st["healthy"] and not st["server"]["running"] and not st["worker"]["running"] and "error" not in st
    deps = {d["name"]: d for d in st["deployments"]}
    assert deps["dr-drill/weekly-drill"]["schedules"] == ["0 3 * * 1 (UTC)"]
    assert deps["dr-drill/monthly-drill-under-load"]["schedules"] == ["0 4 1-7 * 0 (UTC)"]
    assert deps["dr-drill/weekly-drill"]["paused"] is False
    assert isinstance(st["alerts"], list)
    down = sch.schedule_status(state_dir=tmp_path, api_url="http://127.0.0.1:9/api")
    assert not down["healthy"] and down["deployments"] == []


def test_api_healthy_through_the_client(api_url):
    assert sch.api_healthy(api_url)
    assert not sch.api_healthy("http://127.0.0.1:9/api")


# ---------------------------------------------------------------------------------------------- Prefect's retries

class FaultyProxy:
    """127.0.0.1 proxy to the harness's server that answers the first requests matching `path_part` with the
    given statuses (each once, in order), then forwards. Records every (method, path, status) it answered."""

    def __init__(self, upstream: str, path_part: str, statuses: list[tuple[int, dict]]):
        self.upstream = upstream.rstrip("/")
        self.faults = list(statuses)
        self.seen: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    fault = proxy.faults.pop(0) if path_part in self.path and proxy.faults else None
                if fault:
                    status, headers = fault
                    self.send_response(status)
                    for k, v in {**headers, "Content-Length": "0"}.items():
                        self.send_header(k, v)
                    self.end_headers()
                else:
                    r = httpx.request(self.command, proxy.upstream + self.path, content=body, timeout=30,
                                      headers={k: v for k, v in self.headers.items()
                                               if k.lower() not in ("host", "content-length", "connection")})
                    status = r.status_code
                    self.send_response(status)
                    for k, v in r.headers.items():
                        if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                             "content-encoding"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(r.content)))
                    self.end_headers()
                    self.wfile.write(r.content)
                with proxy.lock:
                    proxy.seen.append((self.command, self.path, status))

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answered(self, path_part: str, at_least: int = 0, timeout: float = 5.0) -> list[int]:
        """The statuses answered for `path_part`. The proxy notes an answer after relaying it, so the client may
        have it a moment before it is noted: wait (bounded) for `at_least` of them."""
        def seen() -> list[int]:
            with self.lock:
                return [s for _, p, s in self.seen if path_part in p]

        return wait_until(seen, timeout, 0.02, done=lambda got: len(got) >= at_least)[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def proxy_factory(api_url):
    made = []

    def make(path_part, statuses):
        p = FaultyProxy(api_url[:-len("/api")], path_part, statuses)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


NOW = {"Retry-After": "0"}          # Prefect's client honours Retry-After: no backoff wait in the test


def test_503_and_504_are_retried_by_prefects_client(prefect_client, deployed, proxy_factory):
    # 503 is retried by Prefect out of the box; 504 because CLIENT_RETRY_ENV adds it to
    # PREFECT_CLIENT_RETRY_EXTRA_CODES; the last one has no Retry-After: Prefect's own backoff (about 2 s)
    proxy = proxy_factory("/deployments/name/", [(503, NOW), (504, NOW), (503, NOW), (504, {})])
    res = sch.drill_now("dr-drill/weekly-drill", api_url=proxy.url + "/api", out=lambda m: None)
    try:
        assert proxy.answered("/deployments/name/", 5) == [503, 504, 503, 504, 200]
        assert prefect_client.read_flow_run(res["flow_run_id"]).deployment_id
    finally:
        _delete_runs(prefect_client, [res["flow_run_id"]])

    proxy = proxy_factory("/create_flow_run", [(503, NOW), (504, NOW)])
    res = sch.drill_now("dr-drill/weekly-drill", api_url=proxy.url + "/api", out=lambda m: None)
    try:
        assert proxy.answered("/create_flow_run", 3) == [503, 504, 201]
    finally:
        _delete_runs(prefect_client, [res["flow_run_id"]])

    proxy = proxy_factory("/flows/filter", [(504, NOW), (503, NOW)])
    st = sch.schedule_status(state_dir=Path("/nonexistent"), api_url=proxy.url + "/api")
    assert "error" not in st and len(st["deployments"]) >= 3 and proxy.answered("/flows/filter", 3) == [504, 503, 200]


def test_retries_are_bounded_by_prefect_client_max_retries(deployed, proxy_factory, monkeypatch):
    import prefect.settings as ps
    proxy = proxy_factory("/deployments/name/", [(503, NOW)] * 10)
    with ps.temporary_settings(updates={ps.PREFECT_CLIENT_MAX_RETRIES: 2}):
        with pytest.raises(sch.SchedulingError, match="could not create the flow run: .*503"):
            sch.drill_now("dr-drill/weekly-drill", api_url=proxy.url + "/api", out=lambda m: None)
    assert proxy.answered("/deployments/name/", 3) == [503, 503, 503]      # one attempt + PREFECT_CLIENT_MAX_RETRIES

    # without the extra code, Prefect does not retry a 504: the setting is what retries it, not code of ours
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_EXTRA_CODES", "")
    proxy = proxy_factory("/deployments/name/", [(504, NOW)])
    with pytest.raises(sch.SchedulingError, match="504"):
        sch.drill_now("dr-drill/weekly-drill", api_url=proxy.url + "/api", out=lambda m: None)
    assert proxy.answered("/deployments/name/", 1) == [504]


def test_the_scheduler_processes_get_the_retry_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_CLIENT_RETRY_EXTRA_CODES", raising=False)
    env = sch.prefect_env(tmp_path, "http://127.0.0.1:1/api", base={})
    assert env["PREFECT_CLIENT_RETRY_EXTRA_CODES"] == "504"
    assert sch.prefect_env(tmp_path, "x", base={"PREFECT_CLIENT_RETRY_EXTRA_CODES": "504,500"})[
        "PREFECT_CLIENT_RETRY_EXTRA_CODES"] == "504,500"


def test_the_alerts_and_heads_commands_get_prefects_retries_too(deployed, proxy_factory, capsys):
    import argparse

    from drpoc_chaos.scheduling import cli as sch_cli
    parser = argparse.ArgumentParser(prog="drpoc")
    sch.add_schedule_parser(parser.add_subparsers(dest="cmd", required=True))

    proxy = proxy_factory("/block_documents/filter", [(504, NOW), (503, NOW)])
    args = parser.parse_args(["schedule", "alerts", "--api-url", proxy.url + "/api", "--block", "drpoc-no-such-block",
                              "--dry-run"])
    assert args.func is sch_cli._cmd_schedule_alerts and args.func(args) == 3      # skipped: no such block
    assert proxy.answered("/block_documents/filter", 3) == [504, 503, 200]

    proxy = proxy_factory("/variables/", [(504, NOW)])
    args = parser.parse_args(["schedule", "heads", "--api-url", proxy.url + "/api", "--archive", "/nonexistent/j"])
    assert args.func(args) == 2                                                     # none recorded
    # retried; then the real answer: no such variable
    assert proxy.answered("/variables/", 2)[:2] == [504, 404]
    capsys.readouterr()
