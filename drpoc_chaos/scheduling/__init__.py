"""Scheduled drills: the logic behind `flows/drills.py`, `flows/deploy.py` and `drpoc schedule|drill`.

The Prefect flows are thin; what they decide and compute lives here, in plain functions that are tested without
Prefect (Prefect is imported only inside the functions that talk to it). Pure decisions apart from the plumbing:

    settings.py     the constants (DEFAULT_* …), the user's project (project_root, prefect_file), SchedulingError,
                    utc_now
    verdicts.py     pure: what makes a drill "not passed" (`evaluate_drill`) and a DR posture "broken"
                    (`evaluate_steady_state`), the artifacts published for them (markdown, table, link), the
                    late-run guard (`late_skip_reason`): a run that starts long after its scheduled time is
                    skipped, not run in a pile after a worker outage
    chaos_runs.py   the `chaos run` command line and environment of a drill, run in a **subprocess** (chaoslib
                    installs signal handlers and must own its main thread) in a session of its own, so a worker
                    that dies or is stopped does not interrupt the drill half-way: its control still restores the
                    tunnel and archives the journal (`run_drill`, `run_steady_state`)
    deployments.py  the deployments, defined in ONE place, `flows/prefect.yaml`, applied by Prefect's own
                    `prefect deploy` (`apply_deployments`; `load_deployment_specs`, `next_fire_times` read it), the
                    Prefect client's retry settings (`CLIENT_RETRY_ENV`), and the Prefect API the flows use
                    (concurrency limit, Secret blocks, artifacts)
    alerts.py       alerting: flows/automations.yaml expanded (failed run, no completed run within the schedule's
                    interval + grace, work pool not ready) and applied idempotently as Prefect automations that
                    notify through a notification block (`apply_alerts`, `absence_window`)
    heads.py        the archive's ledger head anchored in Prefect Variables after each drill
                    (`record_ledger_head`, `recorded_heads`, `write_heads_file`)
    server.py       the local scheduler on one machine: `schedule_up` / `schedule_down` / `schedule_status` /
                    `drill_now`, every API call through Prefect's client (`prefect_client`, `run_deployment`)
    cli.py          the argparse helpers `add_schedule_parser` / `add_drill_parser` the `drpoc` CLI mounts

Everything public is re-exported here: `from drpoc_chaos.scheduling import X`. See docs/SCHEDULING.md.
"""
from __future__ import annotations

from .alerts import (
    DEFAULT_ALERTS_BLOCK,
    absence_window,
    apply_alerts,
    automations_file,
    ensure_webhook_block,
    load_alerts_config,
    schedule_gap,
)
from .chaos_runs import (
    chaos_bin,
    chaos_command,
    chaos_var_args,
    check_var_file,
    drill_env,
    drill_lock_hint,
    load_experiment,
    resolve_experiment,
    run_chaos,
    run_drill,
    run_steady_state,
)
from .cli import add_drill_parser, add_schedule_parser
from .deployments import (
    CLIENT_RETRY_ENV,
    DeploymentSpec,
    apply_deployments,
    client_retry_settings,
    concurrency_limit_name,
    deployment_lines,
    drill_limit_names,
    ensure_concurrency_limit,
    ensure_work_pool,
    load_deployment_specs,
    load_secret_env,
    next_fire_times,
    prefect_deploy_command,
    publish_drill_artifacts,
    publish_pair_outcome,
    scheduled_start_time,
    target_name,
)
from .heads import head_variable_name, heads_jsonl, record_ledger_head, recorded_heads, write_heads_file
from .server import (
    SchedulerPaths,
    api_healthy,
    api_url_for,
    default_state_dir,
    drill_now,
    port_in_use,
    prefect_client,
    prefect_env,
    read_record,
    record_alive,
    record_process,
    schedule_down,
    schedule_status,
    schedule_up,
    start_pool_worker,
    stop_pool_worker,
)
from .settings import (
    DEFAULT_ARCHIVE_DIR,
    DEFAULT_CHECK_TIMEOUT_SECONDS,
    DEFAULT_DEPLOYMENT,
    DEFAULT_DRILL_TIMEOUT_SECONDS,
    DEFAULT_EXPERIMENT,
    DEFAULT_HOST,
    DEFAULT_MAX_LATENESS_SECONDS,
    DEFAULT_PORT,
    DRILL_CONTROL_MODULE,
    INTERRUPT_GRACE_SECONDS,
    WORK_POOL_TYPE,
    SchedulingError,
    prefect_file,
    project_root,
    utc_now,
)
from .verdicts import (
    DrillResult,
    SteadyStateResult,
    drill_markdown,
    evaluate_drill,
    evaluate_steady_state,
    failure_message,
    file_url,
    late_skip_reason,
    lateness_seconds,
    metrics_table,
    redact_text,
    skipped_markdown,
    slug,
    steady_state_experiment,
    steady_state_markdown,
)

__all__ = [
    # settings
    "DEFAULT_ARCHIVE_DIR", "DEFAULT_CHECK_TIMEOUT_SECONDS", "DEFAULT_DEPLOYMENT", "DEFAULT_DRILL_TIMEOUT_SECONDS",
    "DEFAULT_EXPERIMENT", "DEFAULT_HOST", "DEFAULT_MAX_LATENESS_SECONDS", "DEFAULT_PORT", "DRILL_CONTROL_MODULE",
    "INTERRUPT_GRACE_SECONDS", "WORK_POOL_TYPE", "SchedulingError", "prefect_file", "project_root", "utc_now",
    # verdicts
    "DrillResult", "SteadyStateResult", "drill_markdown", "evaluate_drill", "evaluate_steady_state",
    "failure_message", "file_url", "late_skip_reason", "lateness_seconds", "metrics_table", "redact_text",
    "skipped_markdown", "slug", "steady_state_experiment", "steady_state_markdown",
    # chaos_runs
    "check_var_file", "chaos_bin", "chaos_command", "chaos_var_args", "drill_env", "drill_lock_hint",
    "load_experiment", "resolve_experiment", "run_chaos", "run_drill", "run_steady_state",
    # deployments
    "CLIENT_RETRY_ENV", "DeploymentSpec", "apply_deployments", "client_retry_settings", "concurrency_limit_name",
    "deployment_lines", "drill_limit_names", "ensure_concurrency_limit", "ensure_work_pool", "load_deployment_specs",
    "load_secret_env", "next_fire_times", "prefect_deploy_command", "publish_drill_artifacts", "publish_pair_outcome",
    "scheduled_start_time", "target_name",
    # alerts
    "DEFAULT_ALERTS_BLOCK", "automations_file", "absence_window", "apply_alerts", "ensure_webhook_block",
    "load_alerts_config", "schedule_gap",
    # heads
    "head_variable_name", "heads_jsonl", "record_ledger_head", "recorded_heads", "write_heads_file",
    # server
    "SchedulerPaths", "api_healthy", "api_url_for", "default_state_dir", "drill_now", "port_in_use",
    "prefect_client", "prefect_env", "read_record", "record_alive", "record_process", "schedule_down",
    "schedule_status", "schedule_up", "start_pool_worker", "stop_pool_worker",
    # cli
    "add_drill_parser", "add_schedule_parser",
]
