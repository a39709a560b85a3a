"""Prefect 3 flows for drpoc-chaos. Thin: the logic lives in `drpoc_chaos.scheduling` (tested without Prefect).

- `dr-drill`: runs each experiment with `chaos run` in a subprocess (one task per experiment, called directly and
  sequentially, never retried: a fault may be half-applied), publishes a markdown summary, a metrics table and a
  link to the archived journal, and ends Failed when any drill did not pass.
- `steady-state-check`: runs only the experiment's steady-state hypothesis (no fault) and ends Failed when the DR
  posture is broken (tunnel down, replica stopped, rows differ, lag over bound).

After its drills, `dr-drill` records the archive's ledger head (seq, entry_hash) outside the archive, in a Prefect
Variable (`drpoc schedule heads --out FILE` exports them for `drpoc verify --heads FILE`).

Both skip a run that starts more than `max_lateness_seconds` after its scheduled time (it ends Cancelled with a
"skipped: late by N s" artifact), and hold the per-target global concurrency limit `drpoc-target-<inventory name>`
while they touch the sites, so two drills (or a drill and a check) never overlap on one target.
Deployments and schedules: flows/prefect.yaml. Operating them: docs/SCHEDULING.md.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.states import Cancelled, State

from drpoc_chaos import scheduling as sch


class DrillNotPassed(Exception):
    """At least one drill of the flow run did not pass; the message lists each one and its reasons."""


class TargetBusy(Exception):
    """Another drill or check held the target's concurrency slot for longer than `target_wait_seconds`."""


class PostureBroken(Exception):
    """The steady-state check found the DR posture broken; the message lists the failing probes."""


def _late_guard(flow_name: str, max_lateness_seconds: Optional[float]) -> Optional[State]:
    reason = sch.late_skip_reason(sch.scheduled_start_time(), sch.utc_now(), max_lateness_seconds)
    if reason is None:
        return None
    get_run_logger().warning(reason)
    create_markdown_artifact(key=f"drpoc-{sch.slug(flow_name)}-skipped",
                             markdown=sch.skipped_markdown(flow_name, reason), description=reason)
    return Cancelled(message=reason)


@contextmanager
def _target_slot(inventory: Optional[str], var_file: Optional[str], wait_seconds: float,
                 pair: Optional[str] = None) -> Iterator[list[str]]:
    names = sch.drill_limit_names(inventory, var_file, pair)
    for name in names:
        sch.ensure_concurrency_limit(name)
    try:
        with concurrency(names, occupy=1, timeout_seconds=wait_seconds, strict=True):
            yield names
    except TimeoutError:
        raise TargetBusy(f"the target was busy: no slot of concurrency limit {', '.join(map(repr, names))} within "
                         f"{wait_seconds:g} s (another drill or check runs on it)") from None


def _anchor_ledger_head(archive_dir: str) -> Optional[dict[str, Any]]:
    """The archive's ledger head recorded in a Prefect Variable; a failure to record is logged, not raised (the
    drills' verdict stands; the next run records the head again)."""
    logger = get_run_logger()
    try:
        head = sch.record_ledger_head(archive_dir)
    except Exception as exc:  # noqa: BLE001
        logger.error("could not record the ledger head of %s in a Prefect Variable: %s: %s", archive_dir,
                     type(exc).__name__, exc)
        return None
    if head:
        logger.info("ledger head of %s: seq %s, entry_hash %s (Prefect Variable %s)", head["archive"], head["seq"],
                    head["entry_hash"], sch.head_variable_name(archive_dir))
    return head


@task(name="chaos-drill", retries=0, cache_policy=NO_CACHE, persist_result=False,
      task_run_name="drill {experiment}")
def drill_task(experiment: str, inventory: Optional[str], var_file: Optional[str], overrides: dict[str, Any],
               archive_dir: str, secret_env: Optional[dict[str, str]], timeout_seconds: float) -> dict[str, Any]:
    logger = get_run_logger()
    secrets = sch.load_secret_env(secret_env)   # values only in the chaos subprocess environment
    result = sch.run_drill(experiment, inventory=inventory, var_file=var_file, overrides=overrides,
                           archive_dir=archive_dir, secret_values=secrets, timeout=timeout_seconds,
                           log=logger.info)
    sch.publish_drill_artifacts(result)
    if result.passed:
        logger.info("drill %s passed (run %s), journal %s", experiment, result.run_id, result.archived_as)
    else:
        logger.error("drill %s did not pass [%s]: %s", experiment, result.status, "; ".join(result.reasons))
    return result.to_dict()


@flow(name="dr-drill", retries=0, log_prints=False)
def dr_drill(experiments: list[str] = [sch.DEFAULT_EXPERIMENT],  # noqa: B006 — never mutated
             inventory: Optional[str] = None,
             var_file: Optional[str] = None,
             objectives: Optional[dict[str, Any]] = None,
             max_outage_seconds: Optional[float] = None,
             archive_dir: str = sch.DEFAULT_ARCHIVE_DIR,
             secret_env: Optional[dict[str, str]] = None,
             max_lateness_seconds: Optional[float] = sch.DEFAULT_MAX_LATENESS_SECONDS,
             timeout_seconds: float = sch.DEFAULT_DRILL_TIMEOUT_SECONDS,
             target_wait_seconds: float = 3600.0,
             pair: Optional[str] = None):
    """Run DR drills (Chaos Toolkit experiments with the drpoc-drill control) one after the other.

    experiments: experiment files (relative to the working directory, else to the repository).
    inventory: inventory file (None: DRPOC_INVENTORY, else the lab's).  var_file: a chaos --var-file.
    objectives: configuration overrides, e.g. {"objective_rto_seconds": 30}.  max_outage_seconds: dead-man's
    switch bound.  archive_dir: where journals are archived.  secret_env: ENV_NAME -> Prefect Secret block name,
    set only in the chaos subprocess.  max_lateness_seconds: skip the run when it starts later than this after its
    scheduled time (None/0: never skip).  timeout_seconds: per drill, then SIGINT (the control restores).
    target_wait_seconds: how long to wait for the target's concurrency slot.  pair: the replication pair of a fleet
    inventory to drill (its `pair` configuration key); the flow then holds that pair's gateway's concurrency slot
    and publishes a `drpoc-pair-<pair>-outcome` table artifact (what a dr-campaign reads back)."""
    skipped = _late_guard("dr-drill", max_lateness_seconds)
    if skipped is not None:
        return skipped
    if not experiments:
        raise ValueError("no experiments to run: give at least one experiment file")
    overrides = dict(objectives or {})
    if max_outage_seconds is not None:
        overrides["max_outage_seconds"] = float(max_outage_seconds)
    if pair:
        overrides["pair"] = pair
    results: list[sch.DrillResult] = []
    with _target_slot(inventory, var_file, target_wait_seconds, pair):
        for experiment in experiments:
            try:
                data = drill_task(experiment, inventory, var_file, overrides, archive_dir, secret_env,
                                  timeout_seconds)
                results.append(sch.DrillResult.from_dict(data))
            except Exception as exc:  # noqa: BLE001 — collect every result first, fail at the end
                results.append(sch.DrillResult(experiment=experiment, passed=False, status="error",
                                               reasons=[f"{type(exc).__name__}: {exc}"]))
    _anchor_ledger_head(archive_dir)
    if pair:
        sch.publish_pair_outcome(pair, results)
    if any(not r.passed for r in results):
        raise DrillNotPassed(sch.failure_message(results))
    return [{"experiment": r.experiment, "status": r.status, "run_id": r.run_id, "archived_as": r.archived_as}
            for r in results]


@task(name="steady-state-probes", retries=0, cache_policy=NO_CACHE, persist_result=False)
def steady_state_task(experiment: str, inventory: Optional[str], var_file: Optional[str],
                      overrides: dict[str, Any], secret_env: Optional[dict[str, str]],
                      timeout_seconds: float) -> dict[str, Any]:
    logger = get_run_logger()
    secrets = sch.load_secret_env(secret_env)
    res = sch.run_steady_state(experiment, inventory=inventory, var_file=var_file, overrides=overrides,
                               secret_values=secrets, timeout=timeout_seconds, log=logger.info)
    if not res.healthy:
        hint = sch.drill_lock_hint(inventory)
        if hint:
            res.problems.append(hint)
    create_markdown_artifact(key=f"drpoc-steady-state-{sch.slug(Path(experiment).stem)}",
                             markdown=sch.steady_state_markdown(res),
                             description="DR posture " + ("healthy" if res.healthy else "BROKEN"))
    return res.to_dict()


@flow(name="steady-state-check", retries=0, log_prints=False)
def steady_state_check(experiment: str = sch.DEFAULT_EXPERIMENT,
                       inventory: Optional[str] = None,
                       var_file: Optional[str] = None,
                       overrides: Optional[dict[str, Any]] = None,
                       secret_env: Optional[dict[str, str]] = None,
                       max_lateness_seconds: Optional[float] = sch.DEFAULT_MAX_LATENESS_SECONDS,
                       timeout_seconds: float = sch.DEFAULT_CHECK_TIMEOUT_SECONDS,
                       target_wait_seconds: float = 900.0,
                       pair: Optional[str] = None):
    """Non-destructive: run only the steady-state hypothesis of `experiment` (tunnel on both gateways, replica
    threads, lag bound, rows equal). Fails when the DR posture is broken. `pair`: a fleet inventory's pair."""
    skipped = _late_guard("steady-state-check", max_lateness_seconds)
    if skipped is not None:
        return skipped
    overrides = {**(overrides or {}), **({"pair": pair} if pair else {})}
    with _target_slot(inventory, var_file, target_wait_seconds, pair):
        data = steady_state_task(experiment, inventory, var_file, overrides, secret_env, timeout_seconds)
    if not data["healthy"]:
        raise PostureBroken("DR posture broken: " + "; ".join(data["problems"]))
    return {"healthy": True, "probes": [p["name"] for p in data["probes"]]}
