"""The local scheduler on one machine: `schedule_up` / `schedule_down` / `schedule_status` / `drill_now` — a
`prefect server start` on 127.0.0.1, the deployments of flows/prefect.yaml applied by `prefect deploy`
(deployments.apply_deployments), the alerts of flows/automations.yaml (alerts.py), a process worker, each recorded by
pid (and start time) under PREFECT_HOME. Every API call goes through Prefect's own client (`prefect.get_client`,
`prefect.deployments.run_deployment`), with Prefect's retries (deployments.CLIENT_RETRY_ENV).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeGuard

from ..core.clock import wait_until
from ..ports import port_in_use
from .alerts import ALERT_NAME_PREFIX, apply_alerts
from .chaos_runs import _kill_group
from .deployments import (
    CLIENT_RETRY_ENV,
    apply_deployments,
    client_retry_settings,
    deployment_lines,
    load_deployment_specs,
)
from .settings import (
    DEFAULT_DEPLOYMENT,
    DEFAULT_HOST,
    DEFAULT_PORT,
    WORK_POOL_TYPE,
    SchedulingError,
    project_root,
    utc_now,
)

# ==============================================================================================================
# the local scheduler: `drpoc schedule up|down|status`, `drpoc drill now`


@dataclass
class SchedulerPaths:
    home: Path                                   # PREFECT_HOME

    @property
    def pids(self) -> Path:
        return self.home / "pids"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.json"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def default_state_dir(repo: Path | None = None) -> Path:
    """<project>/.state/prefect: the scheduler's PREFECT_HOME, pids and logs."""
    return project_root(repo) / ".state" / "prefect"


def api_url_for(port: int, host: str = DEFAULT_HOST) -> str:
    return f"http://{host}:{port}/api"


def prefect_env(home: Path, api_url: str, base: Mapping[str, str] | None = None,
                worker_query_seconds: float | None = None) -> dict[str, str]:
    """The environment of every Prefect process the scheduler starts: offline, state in the project."""
    env = dict(os.environ if base is None else base)
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": env.get(
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180"),
        "PREFECT_CLI_COLORS": "false",
        "PYTHONUNBUFFERED": "1",
    })
    for key, value in CLIENT_RETRY_ENV.items():      # the worker and its flow runs: Prefect's retries, plus 504
        env.setdefault(key, value)
    if worker_query_seconds is not None:
        env["PREFECT_WORKER_QUERY_SECONDS"] = str(worker_query_seconds)
    else:
        env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "5")
    return env


def _proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks): with the pid, identifies one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def record_process(paths: SchedulerPaths, name: str, proc: subprocess.Popen, cmd: Sequence[str], **extra) -> dict:
    rec = {"name": name, "pid": proc.pid, "pgid": os.getpgid(proc.pid), "start_time": _proc_start_time(proc.pid),
           "cmd": list(cmd), "started_at": utc_now().isoformat(), **extra}
    paths.pids.mkdir(parents=True, exist_ok=True)
    paths.pid_file(name).write_text(json.dumps(rec, indent=2) + "\n")
    return rec


def read_record(paths: SchedulerPaths, name: str) -> dict | None:
    try:
        rec = json.loads(paths.pid_file(name).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("pid"), int) else None


def record_alive(rec: Mapping | None) -> TypeGuard[Mapping[str, Any]]:
    """The recorded process still runs, and it is the same process (not a recycled pid)."""
    if not rec:
        return False
    pid = rec["pid"]
    st = _proc_start_time(pid)
    return st is not None and st == rec.get("start_time") and not _is_zombie(pid)


@contextmanager
def prefect_client(api_url: str, **settings) -> Iterator[Any]:
    """Prefect's own sync client (`prefect.get_client`) for `api_url`. It retries 408/429/502/503, 504 (the
    PREFECT_CLIENT_RETRY_EXTRA_CODES default of CLIENT_RETRY_ENV) and dropped connections itself, up to
    PREFECT_CLIENT_MAX_RETRIES times with backoff or the server's Retry-After: no retry loop of our own.
    `settings`: further Prefect settings by name, e.g. PREFECT_CLIENT_MAX_RETRIES=0."""
    import prefect.settings as ps
    from prefect import get_client
    updates = {ps.PREFECT_API_URL: api_url, **client_retry_settings(),
               **{getattr(ps, k): v for k, v in settings.items()}}
    with ps.temporary_settings(updates=updates):
        with get_client(sync_client=True) as client:
            yield client


def api_healthy(api_url: str, timeout: float = 3.0) -> bool:
    """GET /health through Prefect's client, one attempt (it is polled: no retries here)."""
    try:
        with prefect_client(api_url, PREFECT_CLIENT_MAX_RETRIES=0, PREFECT_API_REQUEST_TIMEOUT=timeout) as client:
            return client.api_healthcheck() is None
    except Exception:  # noqa: BLE001
        return False


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _wait(predicate: Callable[[], bool], timeout: float, step: float = 0.5,
          alive: Callable[[], bool] | None = None) -> bool:
    def state() -> bool | None:  # True: there; False: the process it waits for died; None: not yet
        if predicate():
            return True
        return False if alive is not None and not alive() else None

    done, seen = wait_until(state, timeout, step, done=lambda s: s is not None)
    return bool(seen) if done else predicate()


def _spawn(paths: SchedulerPaths, name: str, cmd: Sequence[str], env: Mapping[str, str], cwd: Path,
           **extra) -> dict:
    paths.logs.mkdir(parents=True, exist_ok=True)
    with open(paths.log_file(name), "ab") as logf:
        proc = subprocess.Popen(list(cmd), env=dict(env), cwd=str(cwd), stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return record_process(paths, name, proc, cmd, **extra)


def _prefect_bin() -> str:
    candidate = Path(sys.executable).parent / "prefect"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("prefect")
    if not found:
        raise SchedulingError("the `prefect` command is not installed next to this Python nor on PATH")
    return found


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _pool_of(prefect_file: Path) -> str:
    pools = {s.work_pool for s in load_deployment_specs(prefect_file)}
    if len(pools) != 1:
        raise SchedulingError(f"{prefect_file}: expected one work pool, found {sorted(pools)}")
    return pools.pop()


def schedule_up(*, port: int = DEFAULT_PORT, state_dir: Path | None = None, repo: Path | None = None,
                prefect_file: Path | None = None, worker: bool = True, timeout: float = 180.0,
                worker_query_seconds: float | None = None, alerts: bool = True, alerts_block: str | None = None,
                automations_file: Path | None = None, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Start (or find running) a local Prefect server on 127.0.0.1:`port`, apply the deployments of
    flows/prefect.yaml, then (`alerts`) the automations of flows/automations.yaml, start a worker on their pool.
    Idempotent; every wait is bounded by `timeout`. `result["alerts"]["status"]` is "applied", "skipped" (no
    notification block: the message says how to create one), "error" (the rest still started) or "off"."""
    repo = project_root(repo)
    paths = SchedulerPaths(Path(state_dir) if state_dir else default_state_dir(repo))
    paths.home.mkdir(parents=True, exist_ok=True)
    prefect_file = Path(prefect_file) if prefect_file else repo / "flows" / "prefect.yaml"
    pool = _pool_of(prefect_file)
    api_url = api_url_for(port)
    env = prefect_env(paths.home, api_url, worker_query_seconds=worker_query_seconds)
    result: dict[str, Any] = {"api_url": api_url, "ui_url": api_url[:-len("/api")], "state_dir": str(paths.home)}

    server = read_record(paths, "server")
    if record_alive(server) and server.get("port") == port and _wait(lambda: api_healthy(api_url), min(timeout, 30)):
        out(f"Prefect server already running (pid {server['pid']}) at {result['ui_url']}")
    else:
        if record_alive(server):
            if server.get("port") != port:
                raise SchedulingError(f"the scheduler's server (pid {server['pid']}) runs on port "
                                      f"{server.get('port')}, not {port}: run `drpoc schedule down` first")
            raise SchedulingError(f"the scheduler's server (pid {server['pid']}) does not answer {api_url}/health; "
                                  f"see {paths.log_file('server')}, or run `drpoc schedule down` and up again")
        if port_in_use(port):
            raise SchedulingError(f"port {port} on {DEFAULT_HOST} is taken by another process: stop it, or pass "
                                  f"--port to use another one")
        out(f"starting the Prefect server on {DEFAULT_HOST}:{port} (state in {paths.home}) …")
        cmd = [_prefect_bin(), "server", "start", "--host", DEFAULT_HOST, "--port", str(port)]
        server = _spawn(paths, "server", cmd, env, repo, port=port, api_url=api_url)
        t0 = time.monotonic()
        if not _wait(lambda: api_healthy(api_url), timeout, alive=lambda: record_alive(server)):
            alive = record_alive(server)
            if alive:
                _stop_record(paths, "server", out=lambda m: None)
            else:
                _reap(server["pid"])
                paths.pid_file("server").unlink(missing_ok=True)
            raise SchedulingError(
                ("the Prefect server did not answer " + f"{api_url}/health within {timeout:g} s" if alive
                 else "the Prefect server exited") + f"; its log ({paths.log_file('server')}) ends with:\n"
                + _tail(paths.log_file("server")))
        out(f"server healthy after {time.monotonic() - t0:.1f} s")

    out(f"applying the deployments of {prefect_file} (prefect deploy) …")
    specs = load_deployment_specs(prefect_file)
    ids = apply_deployments(specs, repo=repo, prefect_file=prefect_file, api_url=api_url, timeout=timeout, env=env,
                            log=paths.log_file("deploy"))
    result["deployments"] = deployment_lines(specs, ids)
    for line in result["deployments"]:
        out("  " + line)

    result["alerts"] = {"status": "off"}
    if alerts:
        afile = Path(automations_file) if automations_file else repo / "flows" / "automations.yaml"
        out(f"applying the alerts of {afile} …")
        try:
            result["alerts"] = apply_alerts(automations_file=afile, prefect_file=prefect_file, block=alerts_block,
                                            api_url=api_url, out=lambda m: out("  " + m.replace("\n", "\n  ")))
        except Exception as exc:  # noqa: BLE001 — the drills still run without alerts; the CLI exits 1
            result["alerts"] = {"status": "error", "message": str(exc)}
            out(f"  alerts NOT applied: {exc}")

    if worker:
        wrec = read_record(paths, "worker")
        if record_alive(wrec):
            out(f"worker already running (pid {wrec['pid']})")
        else:
            name = f"drpoc-{socket.gethostname()}"
            cmd = [_prefect_bin(), "worker", "start", "--pool", pool, "--type", WORK_POOL_TYPE, "--name", name]
            wrec = _spawn(paths, "worker", cmd, env, repo, pool=pool, worker_name=name)
            if not _wait(lambda: _worker_online(api_url, pool, name), min(timeout, 90.0),
                         alive=lambda: record_alive(wrec)):
                alive = record_alive(wrec)
                if alive:
                    _stop_record(paths, "worker", out=lambda m: None)
                raise SchedulingError(
                    f"the worker {'did not come online' if alive else 'exited'} (pool {pool}); its log "
                    f"({paths.log_file('worker')}) ends with:\n" + _tail(paths.log_file("worker")))
            out(f"worker {name} online on pool {pool} (pid {wrec['pid']})")
        result["worker_pid"] = wrec["pid"]
    result["server_pid"] = server["pid"]
    out(f"Prefect UI: {result['ui_url']}   (API {api_url}; logs in {paths.logs})")
    return result


def start_pool_worker(pool: str, *, api_url: str, state_dir: Path | None = None, repo: Path | None = None,
                      worker_query_seconds: float | None = 2, timeout: float = 90.0) -> dict[str, Any]:
    """A process worker on `pool` (a campaign's site pool), recorded as `worker-<pool>` and stopped by that record
    (`stop_pool_worker`). Returns its record once it is online."""
    repo = project_root(repo)
    paths = SchedulerPaths(Path(state_dir) if state_dir else default_state_dir(repo))
    paths.home.mkdir(parents=True, exist_ok=True)
    env = prefect_env(paths.home, api_url, worker_query_seconds=worker_query_seconds)
    name = f"drpoc-{socket.gethostname()}-{pool}"
    rec = _spawn(paths, f"worker-{pool}", [_prefect_bin(), "worker", "start", "--pool", pool, "--type",
                                           WORK_POOL_TYPE, "--name", name], env, repo, pool=pool, worker_name=name)
    if not _wait(lambda: _worker_online(api_url, pool, name), timeout, alive=lambda: record_alive(rec)):
        if record_alive(rec):
            _stop_record(paths, f"worker-{pool}", out=lambda m: None)
        log = paths.log_file(f"worker-{pool}")
        raise SchedulingError(f"the worker of pool {pool} did not come online; its log ({log}) ends with:\n"
                              + _tail(log))
    return dict(rec)


def stop_pool_worker(pool: str, *, state_dir: Path | None = None, repo: Path | None = None) -> str:
    paths = SchedulerPaths(Path(state_dir) if state_dir else default_state_dir(repo))
    return _stop_record(paths, f"worker-{pool}", out=lambda m: None)


def _worker_online(api_url: str, pool: str, name: str) -> bool:
    try:
        with prefect_client(api_url) as client:
            return any(w.name == name and str(getattr(w.status, "value", w.status)) == "ONLINE"
                       for w in client.read_workers_for_work_pool(pool))
    except Exception:  # noqa: BLE001
        return False


def _wait_gone(rec: Mapping, timeout: float) -> bool:
    def gone() -> bool:
        _reap(rec["pid"])
        return not record_alive(rec)

    return _wait(gone, timeout, step=0.2)


def _stop_record(paths: SchedulerPaths, name: str, out: Callable[[str], None] = print,
                 timeout: float = 20.0) -> str:
    rec = read_record(paths, name)
    if rec is None:
        return "not recorded"
    if not record_alive(rec):
        paths.pid_file(name).unlink(missing_ok=True)
        return "not running"
    pid, pgid = rec["pid"], rec.get("pgid", rec["pid"])
    how = ""
    if name == "worker" or name.startswith("worker-"):
        # a Prefect worker ignores one SIGTERM; two SIGINTs stop it (the flow runs it started go with it — a
        # running drill does not: chaos runs in a session of its own and finishes its restoration)
        for _ in range(2):
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                break
            if _wait_gone(rec, timeout / 2):
                break
        how = "SIGINT"
    else:
        _kill_group(pgid, signal.SIGTERM)
        _wait_gone(rec, timeout)
        how = "SIGTERM"
    if record_alive(rec):
        _kill_group(pgid, signal.SIGKILL)
        _wait_gone(rec, 10)
        how += ", then SIGKILL"
    stopped = not record_alive(rec)
    if stopped:
        paths.pid_file(name).unlink(missing_ok=True)
    out(f"{name} (pid {pid}) {'stopped' if stopped else 'STILL RUNNING'} ({how})")
    return "stopped" if stopped else "still running"


def schedule_down(*, state_dir: Path | None = None, repo: Path | None = None, timeout: float = 20.0,
                  out: Callable[[str], None] = print) -> dict[str, str]:
    """Stop the worker (SIGINT twice), then the server (SIGTERM, SIGKILL after `timeout`), by recorded pid."""
    paths = SchedulerPaths(Path(state_dir) if state_dir else default_state_dir(repo))
    # a campaign's pool workers (`drpoc campaign workers`), then the scheduler's own worker, then the server
    for rec in sorted(paths.pids.glob("worker-*.json")) if paths.pids.exists() else []:
        _stop_record(paths, rec.stem, out, timeout)
    res = {"worker": _stop_record(paths, "worker", out, timeout), "server": _stop_record(paths, "server", out, timeout)}
    if all(v in ("not recorded", "not running") for v in res.values()):
        out("the scheduler was not running")
    return res


def schedule_status(*, state_dir: Path | None = None, repo: Path | None = None, api_url: str | None = None,
                    ) -> dict[str, Any]:
    paths = SchedulerPaths(Path(state_dir) if state_dir else default_state_dir(repo))
    server, worker = read_record(paths, "server"), read_record(paths, "worker")
    api_url = api_url or (server or {}).get("api_url") or os.environ.get("PREFECT_API_URL") \
        or api_url_for(DEFAULT_PORT)
    st: dict[str, Any] = {
        "api_url": api_url,
        "server": {"pid": (server or {}).get("pid"), "running": record_alive(server)},
        "worker": {"pid": (worker or {}).get("pid"), "running": record_alive(worker)},
        "healthy": api_healthy(api_url), "deployments": [],
    }
    if st["healthy"]:
        try:
            with prefect_client(api_url) as client:
                st["deployments"] = _deployments_status(client)
                st["alerts"] = None
                try:
                    st["alerts"] = [{"name": a.name, "enabled": a.enabled} for a in client.read_automations()
                                    if a.name.startswith(ALERT_NAME_PREFIX)]
                except Exception:  # noqa: BLE001
                    pass
        except Exception as exc:  # noqa: BLE001
            st["error"] = str(exc)
            st.setdefault("alerts", None)
    return st


def _schedule_text(s) -> str:
    if getattr(s, "cron", None):
        return f"{s.cron} ({s.timezone})"
    if getattr(s, "interval", None) is not None:
        return f"every {s.interval.total_seconds():g} s" + (f" ({s.timezone})" if s.timezone else "")
    return f"rrule {getattr(s, 'rrule', '?')}"


def _deployments_status(client) -> list[dict[str, Any]]:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    def one_run(dep_id, types, sort):
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep_id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=types))),
            sort=sort, limit=1)
        return runs[0] if runs else None

    flows = {f.id: f.name for f in client.read_flows()}
    out = []
    for d in client.read_deployments(limit=50):
        nxt = one_run(d.id, [StateType.SCHEDULED], FlowRunSort.EXPECTED_START_TIME_ASC)
        last = one_run(d.id, [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED],
                       FlowRunSort.END_TIME_DESC)
        out.append({
            "name": f"{flows.get(d.flow_id, '?')}/{d.name}",
            "schedules": [_schedule_text(s.schedule) + ("" if s.active else " inactive") for s in d.schedules or []],
            "paused": d.paused,
            "next_run": _iso(nxt.expected_start_time) if nxt else None,
            "last_run": (f"{last.state.name} at {_iso(last.end_time)}" if last and last.state else None)})
    return out


def _iso(t) -> str | None:
    return None if t is None else t.isoformat()


def drill_now(deployment: str = DEFAULT_DEPLOYMENT, *, api_url: str | None = None,
              parameters: Mapping[str, Any] | None = None, wait: bool = False, timeout: float = 900.0,
              state_dir: Path | None = None, repo: Path | None = None, poll: float = 2.0,
              out: Callable[[str], None] = print) -> dict[str, Any]:
    """Create a flow run of `deployment` now with Prefect's `run_deployment` (what `prefect deployment run` does);
    with `wait`, follow its state through the client until it ends or `timeout` passes."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    if api_url is None:
        server = read_record(SchedulerPaths(Path(state_dir) if state_dir else default_state_dir(repo)), "server")
        api_url = (server or {}).get("api_url") or os.environ.get("PREFECT_API_URL") or api_url_for(DEFAULT_PORT)
    if not api_healthy(api_url):
        raise SchedulingError(f"no Prefect API at {api_url}: start the scheduler with `drpoc schedule up`")
    if "/" not in deployment:
        raise SchedulingError(f"deployment {deployment!r}: give it as FLOW/DEPLOYMENT, e.g. {DEFAULT_DEPLOYMENT}")
    with prefect_client(api_url) as client:
        try:
            run = run_deployment(deployment, parameters=dict(parameters or {}), timeout=0, tags=["drill-now"],
                                 as_subflow=False)
        except ObjectNotFound:
            raise SchedulingError(f"no deployment {deployment!r} on {api_url} (run `drpoc schedule up`)") from None
        except Exception as exc:  # noqa: BLE001 — e.g. parameters refused by the deployment's schema
            raise SchedulingError(f"could not create the flow run: {exc}") from None
        if isinstance(run, Coroutine):  # run_deployment is async only when called from an async context
            run.close()
            raise SchedulingError("drill_now is synchronous: call it outside an event loop")
        ui = api_url[:-len("/api")] if api_url.endswith("/api") else api_url
        res: dict[str, Any] = {"flow_run_id": str(run.id), "name": run.name, "url": f"{ui}/runs/flow-run/{run.id}",
               "state": run.state.type.value if run.state else None}
        out(f"flow run {run.name} ({run.id}) created for {deployment}: {res['url']}")
        if not wait:
            return res
        seen: list[str] = []

        def current():
            state = client.read_flow_run(run.id).state
            if state is not None and (not seen or state.name != seen[-1]):
                seen.append(state.name)
                out(f"  {state.name}")
            return state

        ended, state = wait_until(current, timeout, poll, done=lambda st: st is not None and st.is_final())
        if ended and state is not None:
            res.update(state=state.type.value, state_name=state.name, message=state.message)
            if state.message and state.type.value != "COMPLETED":
                out(state.message)
            return res
    res.update(state="TIMEOUT", message=f"the run had not ended after {timeout:g} s (it goes on; see {res['url']})")
    out(res["message"])
    return res
