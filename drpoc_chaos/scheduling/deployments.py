"""Prefect on the flows' side: the deployments, read from ONE place, `flows/prefect.yaml`
(`load_deployment_specs`, `apply_deployments`, `next_fire_times`), and the Prefect API calls the flows make
(per-target concurrency limit, Secret blocks, scheduled start time, artifacts). Prefect is imported only inside the
functions that talk to it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .settings import PREFECT_FILE, REPO_ROOT, WORK_POOL_TYPE, SchedulingError, _ENV_NAME_RE, utc_now
from .verdicts import DrillResult, drill_markdown, file_url, metrics_table, slug


# ==============================================================================================================
# Prefect glue used by the flows (imported lazily)


def target_name(inventory: str | os.PathLike | None = None, var_file: str | os.PathLike | None = None) -> str:
    """The drill target, for the per-target concurrency limit: the inventory's `name` (the file it resolves to:
    `inventory`, else `configuration.inventory` of the var file, else DRPOC_INVENTORY, else the lab's)."""
    path = inventory
    if not path and var_file:
        try:
            data = yaml.safe_load(Path(var_file).expanduser().read_text(encoding="utf-8")) or {}
            cfg = data.get("configuration", data) if isinstance(data, dict) else {}
            path = cfg.get("inventory") if isinstance(cfg, dict) and isinstance(cfg.get("inventory"), str) else None
        except (OSError, yaml.YAMLError):
            path = None
    try:
        from ..inventory import load_inventory
        return load_inventory(path).name
    except Exception:  # noqa: BLE001 — an unreadable inventory fails the drill later, with its own message
        from ..inventory import DEFAULT_LAB_INVENTORY
        return Path(path or os.environ.get("DRPOC_INVENTORY") or DEFAULT_LAB_INVENTORY).stem


def concurrency_limit_name(target: str) -> str:
    return f"drpoc-target-{slug(target)}"


def ensure_concurrency_limit(name: str, limit: int = 1) -> None:
    """Create the global concurrency limit `name` (limit 1) if it does not exist yet."""
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
            value = Secret.load(block).get()
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
# deployments: flows/prefect.yaml is the one place they are defined


@dataclass
class DeploymentSpec:
    name: str
    entrypoint: str                              # "flows/drills.py:dr_drill", relative to the repo root
    work_pool: str
    work_queue: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)   # cron, timezone, day_or, active, slug
    concurrency_limit: int | None = None
    collision_strategy: str | None = None
    paused: bool = False
    version: str | None = None

    @property
    def flow_function(self) -> str:
        return self.entrypoint.split(":", 1)[1]


def load_deployment_specs(path: str | os.PathLike = PREFECT_FILE) -> list[DeploymentSpec]:
    """The deployments of a prefect.yaml (the subset of the format this project uses: cron schedules, a work
    pool, a deployment concurrency limit). Anything else is refused rather than silently ignored."""
    p = Path(path)
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    specs: list[DeploymentSpec] = []
    for i, d in enumerate(data.get("deployments") or []):
        where = f"{p}: deployments[{i}]"
        for key in ("name", "entrypoint"):
            if not d.get(key):
                raise ValueError(f"{where}: `{key}` is required")
        pool = d.get("work_pool") or {}
        if not pool.get("name"):
            raise ValueError(f"{where}: `work_pool.name` is required")
        schedules = []
        for s in d.get("schedules") or []:
            if not s.get("cron") or s.get("interval") or s.get("rrule"):
                raise ValueError(f"{where}: only cron schedules are supported here")
            schedules.append({"cron": s["cron"], "timezone": s.get("timezone") or "UTC",
                              "day_or": s.get("day_or", True), "active": s.get("active", True),
                              "slug": s.get("slug")})
        cl = d.get("concurrency_limit")
        limit, strategy = (cl.get("limit"), cl.get("collision_strategy")) if isinstance(cl, dict) else (cl, None)
        tags = d.get("tags") or []
        specs.append(DeploymentSpec(
            name=d["name"], entrypoint=d["entrypoint"], work_pool=pool["name"],
            work_queue=pool.get("work_queue_name"), description=d.get("description"),
            tags=[str(t) for t in (tags if isinstance(tags, list) else [tags])],
            parameters=dict(d.get("parameters") or {}), schedules=schedules, concurrency_limit=limit,
            collision_strategy=strategy, paused=bool(d.get("paused", False)),
            version=str(d["version"]) if d.get("version") else None))
    if not specs:
        raise ValueError(f"{p}: no deployments")
    return specs


def _cron_schedule(s: Mapping[str, Any]):
    from prefect.client.schemas.schedules import CronSchedule
    return CronSchedule(cron=s["cron"], timezone=s.get("timezone") or "UTC", day_or=s.get("day_or", True))


def next_fire_times(cron: str, tz: str = "UTC", day_or: bool = True, n: int = 3,
                    after: datetime | None = None) -> list[datetime]:
    """The next `n` times a cron schedule fires, computed by Prefect's own server-side schedule model."""
    import asyncio

    from prefect.server.schemas.schedules import CronSchedule as ServerCron
    sched = ServerCron(cron=cron, timezone=tz, day_or=day_or)
    return list(asyncio.run(sched.get_dates(n=n, start=after or utc_now())))


def ensure_work_pool(client, name: str, pool_type: str = WORK_POOL_TYPE) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    try:
        pool = client.read_work_pool(name)
        if pool.type != pool_type:
            raise SchedulingError(f"work pool {name!r} exists with type {pool.type!r}, expected {pool_type!r}")
    except ObjectNotFound:
        client.create_work_pool(WorkPoolCreate(name=name, type=pool_type))


def apply_deployments(specs: Sequence[DeploymentSpec], repo: Path = REPO_ROOT, client=None) -> dict[str, str]:
    """Create or update the work pool(s) and deployments against the current Prefect API (upserts: schedules
    are replaced and the deployment's future scheduled runs recreated). Returns {"flow/deployment": id}."""
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.objects import ConcurrencyOptions
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    own = client is None
    if own:
        client = get_client(sync_client=True)
        client.__enter__()
    try:
        out: dict[str, str] = {}
        for pool in sorted({s.work_pool for s in specs}):
            ensure_work_pool(client, pool)
        for spec in specs:
            path, func = spec.entrypoint.split(":", 1)
            flow = load_flow_from_entrypoint(f"{repo / path}:{func}")
            flow_id = client.create_flow_from_name(flow.name)
            schedules = [DeploymentScheduleCreate(schedule=_cron_schedule(s), active=bool(s.get("active", True)),
                                                  slug=s.get("slug")) for s in spec.schedules]
            options = (ConcurrencyOptions(collision_strategy=spec.collision_strategy)
                       if spec.collision_strategy else None)
            dep_id = client.create_deployment(
                flow_id=flow_id, name=spec.name, version=spec.version, schedules=schedules,
                concurrency_limit=spec.concurrency_limit, concurrency_options=options,
                parameters=spec.parameters, description=spec.description, work_pool_name=spec.work_pool,
                work_queue_name=spec.work_queue, tags=spec.tags, path=str(repo), entrypoint=spec.entrypoint,
                parameter_openapi_schema=parameter_schema(flow).model_dump_for_openapi(), paused=spec.paused,
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(repo)}}],
                enforce_parameter_schema=True, job_variables={})
            out[f"{flow.name}/{spec.name}"] = str(dep_id)
        return out
    finally:
        if own:
            client.__exit__(None, None, None)
