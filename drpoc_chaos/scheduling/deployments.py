"""Prefect on the flows' side: the deployments, defined in ONE place, `flows/prefect.yaml`, and applied by Prefect's
own `prefect deploy` (`apply_deployments`; `load_deployment_specs` is the project's read of the same file, for the
worker's pool, the alerts and the dry run; `next_fire_times`), the Prefect client's retry settings
(`CLIENT_RETRY_ENV`), and the Prefect API calls the flows make (per-target concurrency limit, Secret blocks,
scheduled start time, artifacts). Prefect is imported only inside the functions that talk to it.
"""
from __future__ import annotations

import json
import os
from collections.abc import Coroutine
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .settings import _ENV_NAME_RE, WORK_POOL_TYPE, SchedulingError, project_root, utc_now
from .settings import prefect_file as prefect_file_of
from .verdicts import DrillResult, drill_markdown, file_url, metrics_table, slug

# ==============================================================================================================
# Prefect glue used by the flows (imported lazily)


def target_name(inventory: str | os.PathLike | None = None, var_file: str | os.PathLike | None = None) -> str:
    """The drill target, for the per-target concurrency limit: the inventory's `name` (the file it resolves to:
    `inventory`, else `configuration.inventory` of the var file, else DRPOC_INVENTORY, else the lab's)."""
    path = inventory or (_var_file_inventory(var_file) if var_file else None)
    try:
        from ..inventory import load_fleet
        return load_fleet(path).name
    except Exception:  # noqa: BLE001 — an unreadable inventory fails the drill later, with its own message
        from ..inventory import DEFAULT_LAB_INVENTORY
        return Path(path or os.environ.get("DRPOC_INVENTORY") or DEFAULT_LAB_INVENTORY).stem


def concurrency_limit_name(target: str) -> str:
    return f"drpoc-target-{slug(target)}"


def gateway_limit_name(inventory_name: str, gateway_host: str) -> str:
    """The global concurrency limit (1) of one gateway of a fleet: at most one drill acts on it at a time."""
    return f"drpoc-gateway-{slug(inventory_name)}-{slug(gateway_host)}"


def drill_limit_names(inventory: str | os.PathLike | None = None, var_file: str | os.PathLike | None = None,
                      pair: str | None = None) -> list[str]:
    """The concurrency limits a drill holds while it touches the sites. A one-pair inventory: the target's
    (`drpoc-target-<name>`, as always). A fleet (version 2): the gateway the drill acts on — the lock and the
    fault are on the pair's fault-side gateway; the other side only sees one of its connections go down — so
    drills of pairs on different gateways run at once and two never share one (issue: a hub's spokes)."""
    path = inventory or (_var_file_inventory(var_file) if var_file else None)
    try:
        from ..inventory import load_fleet
        fleet = load_fleet(path)
    except Exception:  # noqa: BLE001 — an unreadable inventory fails the drill later, with its own message
        return [concurrency_limit_name(target_name(inventory, var_file))]
    if fleet.version < 2:
        return [concurrency_limit_name(fleet.name)]
    chosen = pair or (next(iter(fleet.pairs)) if len(fleet.pairs) == 1 else None)
    if chosen not in fleet.pairs:
        # no or unknown pair: the drill will refuse with the loader's message; hold every gateway meanwhile
        return sorted({gateway_limit_name(fleet.name, p.gateway(p.drill.fault_site).host)
                       for p in fleet.pairs.values()})
    inv = fleet.pairs[chosen]
    return [gateway_limit_name(fleet.name, inv.gateway(inv.drill.fault_site).host)]


def _var_file_inventory(var_file: str | os.PathLike) -> str | None:
    """`configuration.inventory` of a chaos var file (None when it has none or cannot be read)."""
    try:
        data = yaml.safe_load(Path(var_file).expanduser().read_text(encoding="utf-8")) or {}
        cfg = data.get("configuration", data) if isinstance(data, dict) else {}
        return cfg.get("inventory") if isinstance(cfg, dict) and isinstance(cfg.get("inventory"), str) else None
    except (OSError, yaml.YAMLError):
        return None


def publish_pair_outcome(pair: str, results: Sequence[DrillResult]) -> str:
    """A table artifact a campaign reads back (by flow run): one row per drill of this pair's flow run."""
    from prefect.artifacts import create_table_artifact
    rows = [{"pair": pair, "experiment": r.experiment, "status": r.status, "passed": bool(r.passed),
             "run_id": r.run_id, "archived_as": r.archived_as, "reasons": "; ".join(r.reasons)[:2000]}
            for r in results]
    return str(create_table_artifact(key=f"drpoc-pair-{slug(pair)}-outcome", table=rows,
                                     description=f"drill outcome of pair {pair}"))


def ensure_concurrency_limit(name: str, limit: int = 1) -> None:
    """Create the global concurrency limit `name` (limit 1) if it does not exist yet.

    Kept by hand: Prefect's deployment `concurrency_limit` (flows/prefect.yaml) bounds one deployment; nothing in
    Prefect bounds the runs of *different* deployments that drill the same sites. A Prefect global concurrency
    limit does, once it is named after the target, which only the flow knows (from its inventory parameter)."""
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
        except ObjectAlreadyExists:
            pass
        except Exception as exc:  # noqa: BLE001 — a 409 from a concurrent creator is fine
            if "409" not in str(exc):
                raise


def load_secret_env(secret_env: Mapping[str, str] | None) -> dict[str, str]:
    """ENV_NAME -> value of the Prefect Secret block named in `secret_env`. Values go only into the chaos
    subprocess environment; errors name the block, never a value."""
    out: dict[str, str] = {}
    if not secret_env:
        return out
    from prefect.blocks.system import Secret
    for env_name, block in secret_env.items():
        if not _ENV_NAME_RE.match(str(env_name)):
            raise SchedulingError(f"secret_env: {env_name!r} is not an environment variable name")
        try:
            secret = Secret.load(block)
            if isinstance(secret, Coroutine):  # Block.load is async only when called from an async context
                secret.close()
                raise SchedulingError("load_secret_env is synchronous: call it outside an event loop")
            value = secret.get()
        except ValueError as exc:
            raise SchedulingError(f"secret_env: no Prefect Secret block named {block!r} ({env_name}): "
                                  f"create it with `Secret(value=...).save({block!r})`") from exc
        out[env_name] = value if isinstance(value, str) else json.dumps(value)
    return out


def scheduled_start_time() -> datetime | None:
    try:
        from prefect.runtime import flow_run
        return flow_run.scheduled_start_time
    except Exception:  # noqa: BLE001
        return None


def publish_drill_artifacts(result: DrillResult) -> dict[str, str]:
    """Markdown summary, metrics table and a link to the archived journal, keyed by scenario."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    key = slug(result.scenario or Path(result.experiment).stem)
    ids = {}
    ids["summary"] = str(create_markdown_artifact(
        key=f"drpoc-{key}-summary", markdown=drill_markdown(result),
        description=f"DR drill {Path(result.experiment).name}: {result.status}"))
    ids["metrics"] = str(create_table_artifact(
        key=f"drpoc-{key}-metrics", table=metrics_table(result),
        description=f"DR metrics vs objectives, run {result.run_id or 'n/a'}"))
    if result.archived_as:
        ids["journal"] = str(create_link_artifact(
            key=f"drpoc-{key}-journal", link=file_url(result.archived_as), link_text=Path(result.archived_as).name,
            description=f"archived journal of run {result.run_id or 'n/a'} (verify with `drpoc verify`)"))
    return ids


# ==============================================================================================================
# deployments: flows/prefect.yaml is the one place they are defined, and Prefect's own `prefect deploy` applies it


# The Prefect client (get_client, run_deployment, `prefect deploy`, the worker) retries 408/429/502/503 and a dropped
# connection by itself, PREFECT_CLIENT_MAX_RETRIES times (default 5) with exponential backoff or the server's
# Retry-After (prefect.client.base.PrefectHttpxSyncClient.send). A busy local server behind a proxy also answers
# 504: PREFECT_CLIENT_RETRY_EXTRA_CODES adds it. These are defaults: a value the operator set wins.
CLIENT_RETRY_ENV = {"PREFECT_CLIENT_RETRY_EXTRA_CODES": "504"}


def client_retry_settings() -> dict:
    """CLIENT_RETRY_ENV as Prefect settings updates (for `temporary_settings`), unless set in the environment."""
    import prefect.settings as ps
    if "PREFECT_CLIENT_RETRY_EXTRA_CODES" in os.environ:
        return {}
    return {ps.PREFECT_CLIENT_RETRY_EXTRA_CODES: {int(c) for c in CLIENT_RETRY_ENV[
        "PREFECT_CLIENT_RETRY_EXTRA_CODES"].split(",")}}


@dataclass
class DeploymentSpec:
    """What the project itself reads from a deployment of prefect.yaml (the worker's pool, the alerts' schedules,
    the dry run). Applying it is Prefect's job (`apply_deployments`): every other key (triggers, pull,
    job_variables, …) goes to the server as Prefect defines it, whether this view shows it or not."""
    name: str
    entrypoint: str                              # "flows/drills.py:dr_drill", relative to the repo root
    work_pool: str
    work_queue: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)   # cron|interval|rrule, timezone, day_or, active
    concurrency_limit: int | None = None
    collision_strategy: str | None = None
    paused: bool = False
    version: str | None = None
    prefect_file: Path | None = None             # the file it was read from

    @property
    def flow_function(self) -> str:
        return self.entrypoint.split(":", 1)[1]


def load_deployment_specs(path: str | os.PathLike | None = None) -> list[DeploymentSpec]:
    """The deployments of a prefect.yaml (default: the project's), as the project reads them. A deployment without
    a name, an entrypoint or a work pool, or a schedule that is not a cron, interval or rrule, is refused here,
    before Prefect is asked."""
    p = Path(path) if path is not None else prefect_file_of()
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    specs: list[DeploymentSpec] = []
    for i, d in enumerate(data.get("deployments") or []):
        where = f"{p}: deployments[{i}]"
        for key in ("name", "entrypoint"):
            if not d.get(key):
                raise ValueError(f"{where}: `{key}` is required")
        pool = d.get("work_pool") or {}
        if not pool.get("name"):
            raise ValueError(f"{where}: `work_pool.name` is required (the worker `drpoc schedule up` starts polls it)")
        schedules = []
        for s in d.get("schedules") or []:
            kinds = [k for k in ("cron", "interval", "rrule") if s.get(k) is not None]
            if len(kinds) != 1:
                raise ValueError(f"{where}: each schedule needs one of cron, interval or rrule")
            sched = {k: s[k] for k in ("cron", "interval", "rrule", "anchor_date", "slug") if s.get(k) is not None}
            sched.update(timezone=s.get("timezone") or "UTC", active=s.get("active", True))
            if "cron" in sched:
                sched["day_or"] = s.get("day_or", True)
            schedules.append(sched)
        cl = d.get("concurrency_limit")
        limit, strategy = (cl.get("limit"), cl.get("collision_strategy")) if isinstance(cl, dict) else (cl, None)
        tags = d.get("tags") or []
        specs.append(DeploymentSpec(
            name=d["name"], entrypoint=d["entrypoint"], work_pool=pool["name"],
            work_queue=pool.get("work_queue_name"), description=d.get("description"),
            tags=[str(t) for t in (tags if isinstance(tags, list) else [tags])],
            parameters=dict(d.get("parameters") or {}), schedules=schedules, concurrency_limit=limit,
            collision_strategy=strategy, paused=bool(d.get("paused", False)),
            version=str(d["version"]) if d.get("version") else None, prefect_file=p))
    if not specs:
        raise ValueError(f"{p}: no deployments")
    return specs


def next_fire_times(cron: str, tz: str = "UTC", day_or: bool = True, n: int = 3,
                    after: datetime | None = None) -> list[datetime]:
    """The next `n` times a cron schedule fires, computed by Prefect's own server-side schedule model."""
    import asyncio

    from prefect.server.schemas.schedules import CronSchedule as ServerCron
    sched = ServerCron(cron=cron, timezone=tz, day_or=day_or)
    return list(asyncio.run(sched.get_dates(n=n, start=after or utc_now())))


def ensure_work_pool(client, name: str, pool_type: str = WORK_POOL_TYPE) -> None:
    """Create the work pool if missing. Kept by hand: `prefect deploy` refuses a pool that does not exist (it only
    offers to pick one interactively) and prefect.yaml has no key to create one."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    try:
        pool = client.read_work_pool(name)
        if pool.type != pool_type:
            raise SchedulingError(f"work pool {name!r} exists with type {pool.type!r}, expected {pool_type!r}")
    except ObjectNotFound:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type=pool_type))
        except ObjectAlreadyExists:
            pass


def prefect_deploy_command(prefect_file: Path, names: Sequence[str] | None = None) -> list[str]:
    """`prefect --no-prompt deploy --all --prefect-file F` (or `--name N` for each of `names`)."""
    import shutil
    import sys
    candidate = Path(sys.executable).parent / "prefect"
    exe = str(candidate) if candidate.exists() else shutil.which("prefect")
    if not exe:
        raise SchedulingError("the `prefect` command is not installed next to this Python nor on PATH")
    cmd = [exe, "--no-prompt", "deploy", "--prefect-file", str(prefect_file)]
    if names:
        for n in names:
            cmd += ["--name", n]
    else:
        cmd.append("--all")
    return cmd


def apply_deployments(specs: Sequence[DeploymentSpec] | None = None, repo: Path | None = None, client=None, *,
                      prefect_file: str | os.PathLike | None = None, api_url: str | None = None,
                      timeout: float = 300.0, env: Mapping[str, str] | None = None,
                      log: Path | None = None) -> dict[str, str]:
    """Apply the deployments of a prefect.yaml with Prefect's own `prefect --no-prompt deploy`, run in `repo` (the
    entrypoints are relative to it, and Prefect's default pull step, when the file has none, is
    `set_working_directory` to it) against `api_url` (default: the current PREFECT_API_URL setting). Every key
    Prefect supports is honoured (schedules, parameters, tags, work_pool incl. job_variables, concurrency_limit,
    triggers, pull, …); re-applying updates in place (same ids; schedules upserted by slug; the deployment's
    triggers replaced). The work pool is created first if missing. Returns {"flow/deployment": id}, read back
    through the Prefect client.

    `specs` picks the deployments (all of their file when they are all of it); `prefect_file` when no specs.
    `env`: the environment of `prefect deploy` (default: this process's); `log`: where its output is appended.
    `repo` defaults to the user's project (the working directory's, or --project-dir), never the install
    location: the deployments then run the project's flows, experiments and journal."""
    import subprocess

    import prefect.settings as ps
    from prefect import get_client

    repo = project_root(repo)
    if specs is None:
        specs = load_deployment_specs(prefect_file or prefect_file_of(repo))
    specs = list(specs)
    pfile = Path(prefect_file or specs[0].prefect_file or prefect_file_of(repo)).resolve()
    every = {s.name for s in load_deployment_specs(pfile)}
    wanted = [s.name for s in specs]
    api_url = api_url or ps.PREFECT_API_URL.value()
    if not api_url:
        raise SchedulingError("no Prefect API to deploy to: set PREFECT_API_URL (or run `drpoc schedule up`)")

    with ps.temporary_settings(updates={ps.PREFECT_API_URL: api_url, **client_retry_settings()}):
        with (get_client(sync_client=True) if client is None else nullcontext(client)) as c:
            for pool in sorted({s.work_pool for s in specs}):
                ensure_work_pool(c, pool)

        env = {**CLIENT_RETRY_ENV, **(os.environ if env is None else env), "PREFECT_API_URL": api_url,
               "PREFECT_CLI_COLORS": "false", "PREFECT_CLI_WRAP_LINES": "false", "COLUMNS": "200"}
        cmd = prefect_deploy_command(pfile, None if set(wanted) == every else wanted)
        try:
            p = subprocess.run(cmd, cwd=str(repo), env=env, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SchedulingError(f"`prefect deploy` did not finish within {timeout:g} s") from None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"$ {' '.join(cmd)}   (in {repo}, exit {p.returncode})\n{p.stdout}{p.stderr}\n")
        if p.returncode != 0:
            raise SchedulingError(f"`prefect {' '.join(cmd[1:])}` failed (exit {p.returncode}):\n"
                                  + ((p.stdout or "") + (p.stderr or ""))[-3000:])

        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
        with (get_client(sync_client=True) if client is None else nullcontext(client)) as c:
            found = c.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=wanted)))
            flows: dict[Any, str] = {}
            out: dict[str, str] = {}
            for spec in specs:
                match = [d for d in found if d.name == spec.name and d.entrypoint == spec.entrypoint]
                if not match:
                    raise SchedulingError(f"`prefect deploy` reported success but {spec.name!r} "
                                          f"({spec.entrypoint}) is not on {api_url}")
                d = match[0]
                if d.flow_id not in flows:
                    flows[d.flow_id] = c.read_flow(d.flow_id).name
                out[f"{flows[d.flow_id]}/{spec.name}"] = str(d.id)
    return out



def deployment_lines(specs: Sequence[DeploymentSpec], ids: Mapping[str, str]) -> list[str]:
    """One line per applied deployment: "flow/name  [schedules]  pool P  id ID"."""
    out = []
    # apply_deployments returns one id per spec, in order; strict=False keeps the old zip() (shortest wins)
    for spec, (name, dep_id) in zip(specs, ids.items(), strict=False):
        scheds = ", ".join(f"{s.get('cron') or s.get('rrule') or 'every ' + str(s.get('interval')) + ' s'} "
                           f"{s['timezone']}" for s in spec.schedules) or "no schedule"
        out.append(f"{name}  [{scheds}]  pool {spec.work_pool}  id {dep_id}")
    return out
