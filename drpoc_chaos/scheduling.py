"""Scheduled drills: the logic behind `flows/drills.py`, `flows/deploy.py` and `drpoc schedule|drill`.

The Prefect flows are thin; what they decide and compute lives here, in plain functions that are tested without
Prefect (Prefect is imported only inside the functions that talk to it):

- the `chaos run` command line and environment of a drill, run in a **subprocess** (chaoslib installs signal
  handlers and must own its main thread) in a session of its own, so a worker that dies or is stopped does not
  interrupt the drill half-way: its control still restores the tunnel and archives the journal;
- what makes a drill "not passed" for the scheduler (`evaluate_drill`) and a DR posture "broken"
  (`evaluate_steady_state`), and the artifacts published for them (markdown, table, link);
- the late-run guard (`late_skip_reason`): a run that starts long after its scheduled time is skipped, not run in a
  pile after a worker outage;
- the deployments, read from ONE place, `flows/prefect.yaml` (`load_deployment_specs`, `apply_deployments`);
- the local scheduler on one machine: `schedule_up` / `schedule_down` / `schedule_status` / `drill_now`, and the
  argparse helpers `add_schedule_parser` / `add_drill_parser` the `drpoc` CLI mounts.

See docs/SCHEDULING.md.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PREFECT_FILE = REPO_ROOT / "flows" / "prefect.yaml"
DEFAULT_EXPERIMENT = "experiments/vpn_outage.yaml"
DEFAULT_ARCHIVE_DIR = "journal"
DEFAULT_MAX_LATENESS_SECONDS = 3600.0
DEFAULT_DRILL_TIMEOUT_SECONDS = 1800.0
DEFAULT_CHECK_TIMEOUT_SECONDS = 300.0
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
DEFAULT_DEPLOYMENT = "dr-drill/weekly-drill"
WORK_POOL_TYPE = "process"
DRILL_CONTROL_MODULE = "drpoc_chaos.drill.control"
# After SIGINT the drill control restores the tunnel (up to its restore_timeout_seconds, default 90 s) and
# archives: give it that long before escalating.
INTERRUPT_GRACE_SECONDS = 150.0

_VAR_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class SchedulingError(RuntimeError):
    """A scheduler or drill-run problem with a message meant for the operator."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def slug(text: str) -> str:
    """Lowercase letters, digits and dashes (what Prefect accepts in artifact keys)."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s or "drill"


# ==============================================================================================================
# the chaos command line and environment (pure)


def chaos_var_args(overrides: Mapping[str, Any] | None) -> list[str]:
    """`--var KEY:TYPE=VALUE` arguments for configuration overrides (`None` values are left out).

    Types: int, float, else a string (booleans as "true"/"false", which the drill control parses)."""
    args: list[str] = []
    for key, value in (overrides or {}).items():
        if not isinstance(key, str) or not _VAR_KEY_RE.match(key):
            raise ValueError(f"configuration override {key!r}: keys are identifiers like objective_rto_seconds")
        if value is None:
            continue
        if isinstance(value, bool):
            args += ["--var", f"{key}={'true' if value else 'false'}"]
        elif isinstance(value, int):
            args += ["--var", f"{key}:int={value}"]
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"configuration override {key}: {value} is not a finite number")
            args += ["--var", f"{key}:float={value!r}"]
        elif isinstance(value, str):
            args += ["--var", f"{key}={value}"]
        else:
            raise ValueError(f"configuration override {key}: {type(value).__name__} values are not supported "
                             "(use a number or a string)")
    return args


def chaos_bin() -> str:
    """The `chaos` next to the running interpreter (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).parent / "chaos"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("chaos")
    if not found:
        raise SchedulingError("the `chaos` command is not installed next to this Python nor on PATH")
    return found


def chaos_command(experiment: str | os.PathLike, journal_path: str | os.PathLike, *,
                  var_file: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
                  run_options: Sequence[str] = (), chaos: str | None = None) -> list[str]:
    """`chaos --no-version-check --no-log-file run --journal-path J [run_options] [--var-file F] [--var …] E`."""
    cmd = [chaos or chaos_bin(), "--no-version-check", "--no-log-file", "run", "--journal-path", str(journal_path)]
    cmd += list(run_options)
    if var_file:
        cmd += ["--var-file", str(var_file)]
    cmd += chaos_var_args(overrides)
    cmd.append(str(experiment))
    return cmd


def drill_env(base: Mapping[str, str], *, inventory: str | os.PathLike | None = None,
              archive_dir: str | os.PathLike | None = None,
              secret_values: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the chaos subprocess: `base` plus DRPOC_INVENTORY / DRPOC_ARCHIVE_DIR and the secrets
    (which go nowhere else)."""
    env = dict(base)
    env["PYTHONUNBUFFERED"] = "1"
    if inventory:
        env["DRPOC_INVENTORY"] = str(Path(inventory).expanduser().absolute())
    if archive_dir:
        env["DRPOC_ARCHIVE_DIR"] = str(Path(archive_dir).expanduser().absolute())
    for name, value in (secret_values or {}).items():
        if not _ENV_NAME_RE.match(name):
            raise ValueError(f"secret_env: {name!r} is not an environment variable name")
        env[name] = value
    return env


def resolve_experiment(path: str | os.PathLike, repo: Path = REPO_ROOT) -> Path:
    """An experiment path as given, else relative to the repository (deployments run from the repo root)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p.absolute()
    alt = repo / p
    return alt if alt.exists() else p.absolute()


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for value in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


# ==============================================================================================================
# what the scheduler calls a failed drill (pure)


@dataclass
class DrillResult:
    experiment: str
    passed: bool
    status: str                                  # the drpoc verdict status, or "error"
    reasons: list[str] = field(default_factory=list)
    exit_code: int | None = None
    run_status: str | None = None                # the Chaos Toolkit journal status
    deviated: bool | None = None
    run_id: str | None = None
    scenario: str | None = None
    title: str | None = None
    started: str | None = None
    ended: str | None = None
    archived_as: str | None = None
    journal_path: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    objective_results: list[dict] = field(default_factory=list)
    writes: dict[str, Any] = field(default_factory=dict)
    output_tail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DrillResult":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def _add(reasons: list[str], reason: str, prefix: str | None = None) -> None:
    """Append `reason` unless a reason with the same `prefix` (or the same text) is already listed."""
    p = prefix or reason
    if not any(r.startswith(p) for r in reasons):
        reasons.append(reason)


def _failing_probes(state: Mapping | None) -> list[str]:
    return [str((p.get("activity") or {}).get("name", "?")) for p in (state or {}).get("probes", [])
            if p.get("status") != "succeeded" or p.get("tolerance_met") is False]


def evaluate_drill(journal: Mapping[str, Any] | None, exit_code: int | None, *, experiment: str,
                   problem: str | None = None) -> DrillResult:
    """Decide whether one drill passed, from its journal and `chaos run`'s exit code.

    Not passed when any of: no journal, no drpoc verdict, verdict not passed, run status not completed, deviated,
    steady state not met before the method, lost (or unexpected/duplicated) writes, an objective missed or not
    measured, the journal not archived, chaos exited non-zero. `problem` is a failure outside the journal (chaos
    could not start, timed out…). The verdict's own reasons come first, then what the scheduler adds."""
    reasons: list[str] = []
    if problem:
        reasons.append(problem)
    if not isinstance(journal, Mapping):
        _add(reasons, "no journal was written: the drill did not run (see the chaos output)", "no journal")
        return DrillResult(experiment=experiment, passed=False, status="error", reasons=reasons,
                           exit_code=exit_code)
    drpoc = journal.get("drpoc") if isinstance(journal.get("drpoc"), Mapping) else None
    verdict = (drpoc or {}).get("verdict") if isinstance((drpoc or {}).get("verdict"), Mapping) else None
    if drpoc is None:
        _add(reasons, "the journal has no drpoc verdict: is the drpoc-drill control declared in the experiment?")
    elif verdict is None:
        _add(reasons, "the journal's drpoc key has no verdict")
    else:
        for r in verdict.get("reasons") or []:
            _add(reasons, str(r))
        if not verdict.get("passed") and not verdict.get("reasons"):
            _add(reasons, f"verdict: {verdict.get('status', 'not passed')}")
    # When the verdict did not pass, its reasons explain why. When it passed (or is missing), check again what
    # must never pass, independently of the control: a pass that contradicts the journal is not a pass.
    independent = verdict is None or bool(verdict.get("passed"))
    before = (journal.get("steady_states") or {}).get("before")
    writes = (drpoc or {}).get("writes") if isinstance((drpoc or {}).get("writes"), Mapping) else {}
    metrics = (drpoc or {}).get("metrics") if isinstance((drpoc or {}).get("metrics"), Mapping) else {}
    objective_results = [r for r in (drpoc or {}).get("objective_results") or [] if isinstance(r, Mapping)]
    status = journal.get("status")
    if independent:
        if isinstance(before, Mapping) and before.get("steady_state_met") is False:
            failing = ", ".join(_failing_probes(before)) or "see steady_states.before"
            _add(reasons, f"steady state not met before the method ({failing}): no fault was injected")
        if journal.get("deviated"):
            failing = ", ".join(_failing_probes((journal.get("steady_states") or {}).get("after"))) or "?"
            _add(reasons, f"steady state deviated after the method ({failing})")
        lost = list(writes.get("lost") or [])
        max_lost = ((drpoc or {}).get("objectives") or {}).get("max_lost_writes") or 0
        n_lost = len(lost) if lost else (metrics.get("lost_writes") or 0)
        if isinstance(n_lost, (int, float)) and n_lost > max_lost:
            shown = ", ".join(map(str, lost[:10])) + (" …" if len(lost) > 10 else "")
            _add(reasons, f"{int(n_lost)} acknowledged write(s) missing on the replica"
                 + (f": {shown}" if shown else ""))
        if writes.get("unexpected"):
            _add(reasons, f"{len(writes['unexpected'])} unexpected row(s) on the replica")
        if writes.get("duplicated"):
            _add(reasons, f"{len(writes['duplicated'])} write(s) duplicated on the replica")
        for r in objective_results:
            if r.get("passed") is False and r.get("name") != "max_lost_writes":
                label = r.get("label") or r.get("name")
                if r.get("achieved") is None:
                    _add(reasons, f"objective not measured: {label}")
                else:
                    _add(reasons, f"objective missed: {label}: achieved {r.get('achieved')} > objective "
                                  f"{r.get('objective')}")
        if status != "completed":
            _add(reasons, f"the Chaos Toolkit run ended '{status}'")
        if exit_code not in (0, None):
            _add(reasons, f"chaos exited with code {exit_code}")
    if drpoc is not None and not drpoc.get("archived_as"):
        _add(reasons, "the journal was not archived (see the chaos output)")
    passed = not reasons
    if passed:
        status_ = "passed"
    elif verdict is not None and not verdict.get("passed"):
        status_ = str(verdict.get("status") or "failed")
    else:
        status_ = "failed" if verdict is not None else "error"
    return DrillResult(
        experiment=experiment, passed=passed, status=status_,
        reasons=reasons, exit_code=exit_code, run_status=status, deviated=journal.get("deviated"),
        run_id=(drpoc or {}).get("run_id"), scenario=(drpoc or {}).get("scenario"),
        title=(drpoc or {}).get("title") or (journal.get("experiment") or {}).get("title"),
        started=(drpoc or {}).get("started") or journal.get("start"),
        ended=(drpoc or {}).get("ended") or journal.get("end"),
        archived_as=(drpoc or {}).get("archived_as"),
        metrics=dict(metrics), objective_results=[dict(r) for r in objective_results],
        writes={k: writes.get(k) for k in ("attempted", "acknowledged", "observed") if k in writes})


def failure_message(results: Iterable[DrillResult]) -> str:
    """The message the failed flow run carries: each failed drill and its reasons."""
    failed = [r for r in results if not r.passed]
    lines = [f"{len(failed)} drill(s) did not pass:"]
    for r in failed:
        lines.append(f"- {Path(r.experiment).name} [{r.status}]" + (f" run {r.run_id[:8]}" if r.run_id else ""))
        lines += [f"    - {reason}" for reason in r.reasons]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out += _flatten(v, name + ".")
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out.append((name, v))
    return out


def metrics_table(result: DrillResult) -> list[dict[str, Any]]:
    """Rows for the table artifact: the objectives (achieved vs objective) first, then every other metric."""
    rows: list[dict[str, Any]] = []
    for r in result.objective_results:
        rows.append({"metric": r.get("label") or r.get("name"), "achieved": r.get("achieved"),
                     "objective": r.get("objective"),
                     "passed": None if r.get("passed") is None else bool(r.get("passed"))})
    for name, value in _flatten(result.metrics):
        rows.append({"metric": name, "achieved": value, "objective": None, "passed": None})
    return rows


def file_url(path: str | os.PathLike) -> str:
    return Path(path).absolute().as_uri()


def drill_markdown(result: DrillResult) -> str:
    head = "PASSED" if result.passed else "NOT PASSED"
    lines = [f"# DR drill {head}: {Path(result.experiment).name}", ""]
    if result.title:
        lines += [f"*{result.title}*", ""]
    lines += ["| | |", "|---|---|",
              f"| verdict | **{result.status}** |",
              f"| run id | `{result.run_id or 'n/a'}` |",
              f"| started / ended (UTC) | {result.started or 'n/a'} / {result.ended or 'n/a'} |",
              f"| Chaos Toolkit status | {result.run_status or 'n/a'}"
              + (" (deviated)" if result.deviated else "") + f", exit code {_fmt(result.exit_code)} |",
              f"| writes attempted / acknowledged / observed | {_fmt(result.writes.get('attempted'))} / "
              f"{_fmt(result.writes.get('acknowledged'))} / {_fmt(result.writes.get('observed'))} |",
              f"| archived journal | "
              + (f"[{Path(result.archived_as).name}]({file_url(result.archived_as)})" if result.archived_as
                 else "**not archived**") + " |", ""]
    if result.reasons:
        lines += ["## Reasons", ""] + [f"- {r}" for r in result.reasons] + [""]
    if result.objective_results:
        lines += ["## DR metrics vs objectives", "", "| objective | achieved | objective | met |",
                  "|---|---:|---:|:---:|"]
        for r in result.objective_results:
            met = {True: "yes", False: "**NO**"}.get(r.get("passed"), "n/a")
            lines.append(f"| {r.get('label') or r.get('name')} | {_fmt(r.get('achieved'))} | "
                         f"{_fmt(r.get('objective'))} | {met} |")
        lines.append("")
    key = ("detection_seconds", "outage_seconds", "tunnel_recovery_seconds", "replica_reconnect_seconds",
           "catch_up_seconds", "rto_seconds", "recovery_time_seconds", "lost_writes")
    shown = [(k, result.metrics[k]) for k in key if k in result.metrics]
    if shown:
        lines += ["## Key metrics", ""] + [f"- {k}: {_fmt(v)}" for k, v in shown] + [""]
    return "\n".join(lines)


# ==============================================================================================================
# the steady-state check (pure parts)


def steady_state_experiment(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment reduced to its steady-state hypothesis: empty method, no rollbacks, no drill control (no
    lock, no dead-man's switch, no archive: nothing is changed on the sites)."""
    if not experiment.get("steady-state-hypothesis"):
        raise ValueError("the experiment has no steady-state-hypothesis to check")
    exp = copy.deepcopy(dict(experiment))
    exp["method"] = []
    exp.pop("rollbacks", None)
    controls = [c for c in exp.get("controls") or []
                if (c.get("provider") or {}).get("module") != DRILL_CONTROL_MODULE]
    if controls:
        exp["controls"] = controls
    else:
        exp.pop("controls", None)
    exp["title"] = f"Steady-state check: {experiment.get('title', '')}".strip()
    exp["tags"] = list(exp.get("tags") or []) + ["steady-state-check"]
    return exp


@dataclass
class SteadyStateResult:
    experiment: str
    healthy: bool
    problems: list[str] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)   # name, ok, output/detail
    exit_code: int | None = None
    checked_at: str = ""
    output_tail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_steady_state(journal: Mapping[str, Any] | None, exit_code: int | None, *, experiment: str,
                          hypothesis: Mapping[str, Any] | None = None,
                          problem: str | None = None) -> SteadyStateResult:
    """Healthy only when every probe of the hypothesis ran and met its tolerance. chaoslib stops at the first
    failing probe: the ones after it are listed as not checked."""
    res = SteadyStateResult(experiment=experiment, healthy=False, exit_code=exit_code,
                            checked_at=utc_now().isoformat().replace("+00:00", "Z"))
    if problem:
        res.problems.append(problem)
    if not isinstance(journal, Mapping):
        res.problems.append("no journal was written: the check did not run (see the chaos output)")
        return res
    before = (journal.get("steady_states") or {}).get("before")
    if not isinstance(before, Mapping):
        res.problems.append("the steady-state hypothesis did not run")
        return res
    ran = []
    for p in before.get("probes") or []:
        act = p.get("activity") or {}
        name = str(act.get("name", "?"))
        ran.append(name)
        ok = p.get("status") == "succeeded" and p.get("tolerance_met") is not False
        if p.get("status") != "succeeded":
            exc = p.get("exception")
            detail = str(exc[-1] if isinstance(exc, list) and exc else exc or "failed").strip().splitlines()[-1:]
            detail = detail[0] if detail else "failed"
        elif not ok:
            detail = f"returned {p.get('output')!r}, expected {act.get('tolerance')!r}"
        else:
            detail = f"returned {p.get('output')!r}"
        res.probes.append({"name": name, "ok": ok, "detail": detail[:300]})
        if not ok:
            res.problems.append(f"{name}: {detail[:300]}")
    for probe in (hypothesis or {}).get("probes") or []:
        name = probe.get("name", "?")
        if name not in ran:
            res.probes.append({"name": name, "ok": None, "detail": "not checked (an earlier probe failed)"})
    if before.get("steady_state_met") is not True and not res.problems:
        res.problems.append("steady state not met")
    if journal.get("status") not in ("completed",) and not res.problems:
        res.problems.append(f"the Chaos Toolkit run ended '{journal.get('status')}'")
    res.healthy = not res.problems
    return res


def steady_state_markdown(result: SteadyStateResult) -> str:
    head = "healthy" if result.healthy else "BROKEN"
    lines = [f"# DR posture {head}: {Path(result.experiment).name}", "", f"Checked at {result.checked_at}.", "",
             "| probe | result | detail |", "|---|:---:|---|"]
    for p in result.probes:
        mark = {True: "ok", False: "**FAILED**", None: "not checked"}[p["ok"]]
        lines.append(f"| {p['name']} | {mark} | {str(p['detail']).replace('|', '/')} |")
    if result.problems:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in result.problems]
    return "\n".join(lines) + "\n"


# ==============================================================================================================
# the late-run guard (pure)


def lateness_seconds(scheduled_start: datetime | None, now: datetime) -> float:
    if scheduled_start is None:
        return 0.0
    if scheduled_start.tzinfo is None:
        scheduled_start = scheduled_start.replace(tzinfo=timezone.utc)
    return (now - scheduled_start).total_seconds()


def late_skip_reason(scheduled_start: datetime | None, now: datetime,
                     max_lateness_seconds: float | None) -> str | None:
    """`"skipped: late by N s …"` when the run starts more than `max_lateness_seconds` after its scheduled time
    (None or <= 0 disables the guard), else None."""
    if max_lateness_seconds is None or max_lateness_seconds <= 0:
        return None
    late = lateness_seconds(scheduled_start, now)
    if late <= max_lateness_seconds:
        return None
    return (f"skipped: late by {late:.0f} s (scheduled for {scheduled_start.isoformat()}, "
            f"max_lateness_seconds={max_lateness_seconds:g}); the next scheduled run will drill")


def skipped_markdown(flow_name: str, reason: str) -> str:
    return (f"# {flow_name}: run skipped\n\n{reason}.\n\nRuns that start long after their scheduled time (a worker "
            "was down, a queue was blocked) are skipped instead of being run in a pile. See docs/SCHEDULING.md.\n")


# ==============================================================================================================
# running chaos (imperative)


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_chaos(cmd: Sequence[str], *, env: Mapping[str, str], cwd: str | os.PathLike | None = None,
              timeout: float = DEFAULT_DRILL_TIMEOUT_SECONDS, log: Callable[[str], None] | None = None,
              secrets: Iterable[str] = (), grace: float = INTERRUPT_GRACE_SECONDS) -> tuple[int, str, str | None]:
    """Run `chaos` in its own session, stream its output (redacted) to `log`, and bound it in time: after
    `timeout` it gets SIGINT (the drill control restores what it took down and archives), `grace` seconds later
    SIGTERM, then SIGKILL. Returns (exit code, output tail, problem or None)."""
    secrets = list(secrets)
    lines: list[str] = []
    proc = subprocess.Popen(list(cmd), env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, text=True, errors="replace")

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = redact_text(_ANSI_RE.sub("", line.rstrip("\n")), secrets)
            lines.append(line)
            if len(lines) > 400:
                del lines[:100]
            if log:
                try:
                    log(line)
                except Exception:  # noqa: BLE001 — logging must not break the drill
                    pass

    t = threading.Thread(target=reader, name="chaos-output", daemon=True)
    t.start()
    problem = None
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        problem = f"the run exceeded timeout_seconds={timeout:g}: interrupted (SIGINT)"
        _kill_group(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            problem += f"; still running {grace:g} s later: SIGTERM"
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problem += "; then SIGKILL"
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    except BaseException:
        # our own process is being stopped (KeyboardInterrupt, cancellation): leave chaos running in its own
        # session so its control restores the tunnel and archives the journal; the dead-man's switch is the backstop
        raise
    t.join(timeout=5)
    return proc.returncode, "\n".join(lines[-40:]), problem


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_var_file(var_file: str | os.PathLike | None) -> Path | None:
    """chaos only logs a missing --var-file and goes on with defaults: refuse it here instead."""
    if not var_file:
        return None
    p = Path(var_file).expanduser().absolute()
    if not p.is_file():
        raise SchedulingError(f"var_file {p} does not exist or is not a file")
    return p


def run_drill(experiment: str | os.PathLike, *, inventory: str | os.PathLike | None = None,
              var_file: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
              archive_dir: str | os.PathLike = DEFAULT_ARCHIVE_DIR,
              secret_values: Mapping[str, str] | None = None, timeout: float = DEFAULT_DRILL_TIMEOUT_SECONDS,
              log: Callable[[str], None] | None = None, base_env: Mapping[str, str] | None = None) -> DrillResult:
    """One drill: `chaos run` in a subprocess, then its journal evaluated. Never raises for a drill problem:
    everything that went wrong is in the result's reasons."""
    exp = resolve_experiment(experiment)
    label = str(experiment)
    secrets = list((secret_values or {}).values())
    try:
        if not exp.is_file():
            raise SchedulingError(f"experiment {exp} does not exist")
        vf = check_var_file(var_file)
        if inventory and not Path(inventory).expanduser().is_file():
            raise SchedulingError(f"inventory {Path(inventory).expanduser().absolute()} does not exist")
        env = drill_env(base_env if base_env is not None else os.environ, inventory=inventory,
                        archive_dir=archive_dir, secret_values=secret_values)
        with tempfile.TemporaryDirectory(prefix="drpoc-drill-") as tmp:
            journal_path = Path(tmp) / "journal.json"
            cmd = chaos_command(exp, journal_path, var_file=vf, overrides=overrides)
            code, tail, problem = run_chaos(cmd, env=env, timeout=timeout, log=log, secrets=secrets)
            journal = _read_json(journal_path)
        result = evaluate_drill(journal, code, experiment=label, problem=problem)
        result.output_tail = tail
        if result.archived_as:
            result.journal_path = result.archived_as
        return result
    except (SchedulingError, ValueError, OSError) as exc:
        return DrillResult(experiment=label, passed=False, status="error",
                           reasons=[redact_text(str(exc), secrets)])


def load_experiment(path: str | os.PathLike) -> dict[str, Any]:
    p = resolve_experiment(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchedulingError(f"cannot read experiment {p}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SchedulingError(f"experiment {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SchedulingError(f"experiment {p} is not a Chaos Toolkit experiment")
    return data


def run_steady_state(experiment: str | os.PathLike = DEFAULT_EXPERIMENT, *,
                     inventory: str | os.PathLike | None = None, var_file: str | os.PathLike | None = None,
                     overrides: Mapping[str, Any] | None = None, secret_values: Mapping[str, str] | None = None,
                     timeout: float = DEFAULT_CHECK_TIMEOUT_SECONDS, log: Callable[[str], None] | None = None,
                     base_env: Mapping[str, str] | None = None) -> SteadyStateResult:
    """Run only the experiment's steady-state hypothesis (no fault, no lock, no archive) with `chaos run`."""
    label = str(experiment)
    secrets = list((secret_values or {}).values())
    hypothesis = None
    try:
        exp = load_experiment(experiment)
        hypothesis = exp.get("steady-state-hypothesis")
        reduced = steady_state_experiment(exp)
        vf = check_var_file(var_file)
        if inventory and not Path(inventory).expanduser().is_file():
            raise SchedulingError(f"inventory {Path(inventory).expanduser().absolute()} does not exist")
        env = drill_env(base_env if base_env is not None else os.environ, inventory=inventory,
                        secret_values=secret_values)
        with tempfile.TemporaryDirectory(prefix="drpoc-check-") as tmp:
            exp_path = Path(tmp) / "steady-state.json"
            exp_path.write_text(json.dumps(reduced), encoding="utf-8")
            journal_path = Path(tmp) / "journal.json"
            cmd = chaos_command(exp_path, journal_path, var_file=vf, overrides=overrides,
                                run_options=["--hypothesis-strategy", "before-method-only",
                                             "--rollback-strategy", "never"])
            code, tail, problem = run_chaos(cmd, env=env, timeout=timeout, log=log, secrets=secrets, grace=30)
            journal = _read_json(journal_path)
        res = evaluate_steady_state(journal, code, experiment=label, hypothesis=hypothesis, problem=problem)
        res.output_tail = tail
        return res
    except (SchedulingError, ValueError, OSError) as exc:
        return SteadyStateResult(experiment=label, healthy=False, problems=[redact_text(str(exc), secrets)],
                                 checked_at=utc_now().isoformat().replace("+00:00", "Z"))


def drill_lock_hint(inventory: str | os.PathLike | None = None) -> str | None:
    """When a drill holds the lock on the fault-side gateway (a hand-run `chaos run`, say), a failed steady-state
    check is probably that drill's fault: say so. Best effort, bounded by the inventory's SSH timeouts."""
    try:
        from .activity import gateway_host
        from .drill import safety
        from .inventory import load_inventory
        inv = load_inventory(inventory)
        holder = safety.lock_holder(gateway_host(inv, inv.drill.fault_site))
    except Exception:  # noqa: BLE001 — a hint only
        return None
    if holder:
        return (f"a drill holds the drill lock on the {inv.drill.fault_site} gateway (run "
                f"{str(holder.get('run_id', '?'))[:8]}, scenario {holder.get('scenario', '?')}): "
                "the failure may be that drill's fault")
    return None


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
        from .inventory import load_inventory
        return load_inventory(path).name
    except Exception:  # noqa: BLE001 — an unreadable inventory fails the drill later, with its own message
        from .inventory import DEFAULT_LAB_INVENTORY
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


def default_state_dir(repo: Path = REPO_ROOT) -> Path:
    return repo / ".state" / "prefect"


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


def record_alive(rec: Mapping | None) -> bool:
    """The recorded process still runs, and it is the same process (not a recycled pid)."""
    if not rec:
        return False
    pid = rec["pid"]
    st = _proc_start_time(pid)
    return st is not None and st == rec.get("start_time") and not _is_zombie(pid)


def port_in_use(port: int, host: str = DEFAULT_HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _http(method: str, url: str, timeout: float = 5.0, **kw):
    import httpx
    return httpx.request(method, url, timeout=timeout, **kw)


def api_healthy(api_url: str, timeout: float = 3.0) -> bool:
    try:
        r = _http("GET", f"{api_url}/health", timeout=timeout)
        return r.status_code == 200
    except Exception:  # noqa: BLE001
        return False


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _wait(predicate: Callable[[], bool], timeout: float, step: float = 0.5,
          alive: Callable[[], bool] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if alive is not None and not alive():
            return False
        time.sleep(step)
    return predicate()


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


def schedule_up(*, port: int = DEFAULT_PORT, state_dir: Path | None = None, repo: Path = REPO_ROOT,
                prefect_file: Path | None = None, worker: bool = True, timeout: float = 180.0,
                worker_query_seconds: float | None = None, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Start (or find running) a local Prefect server on 127.0.0.1:`port`, apply the deployments of
    flows/prefect.yaml, start a worker on their pool. Idempotent; every wait is bounded by `timeout`."""
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

    out(f"applying the deployments of {prefect_file} …")
    cmd = [sys.executable, str(repo / "flows" / "deploy.py"), "--prefect-file", str(prefect_file)]
    try:
        p = subprocess.run(cmd, env=env, cwd=str(repo), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SchedulingError(f"deploying timed out after {timeout:g} s") from None
    if p.returncode != 0:
        raise SchedulingError("deploying failed:\n" + (p.stderr or p.stdout)[-3000:])
    for line in p.stdout.strip().splitlines():
        out("  " + line)
    result["deployments"] = p.stdout.strip().splitlines()

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


def _worker_online(api_url: str, pool: str, name: str) -> bool:
    try:
        r = _http("POST", f"{api_url}/work_pools/{pool}/workers/filter", json={})
        return r.status_code == 200 and any(w.get("name") == name and w.get("status") == "ONLINE"
                                            for w in r.json())
    except Exception:  # noqa: BLE001
        return False


def _wait_gone(rec: Mapping, timeout: float) -> bool:
    return _wait(lambda: (_reap(rec["pid"]), not record_alive(rec))[1], timeout, step=0.2)


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
    if name == "worker":
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


def schedule_down(*, state_dir: Path | None = None, repo: Path = REPO_ROOT, timeout: float = 20.0,
                  out: Callable[[str], None] = print) -> dict[str, str]:
    """Stop the worker (SIGINT twice), then the server (SIGTERM, SIGKILL after `timeout`), by recorded pid."""
    paths = SchedulerPaths(Path(state_dir) if state_dir else default_state_dir(repo))
    res = {"worker": _stop_record(paths, "worker", out, timeout), "server": _stop_record(paths, "server", out, timeout)}
    if all(v in ("not recorded", "not running") for v in res.values()):
        out("the scheduler was not running")
    return res


def schedule_status(*, state_dir: Path | None = None, repo: Path = REPO_ROOT, api_url: str | None = None,
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
            deps = _http("POST", f"{api_url}/deployments/filter", json={"limit": 50}).json()
            flows = {f["id"]: f["name"] for f in _http("POST", f"{api_url}/flows/filter", json={}).json()}
            for d in deps:
                runs = _http("POST", f"{api_url}/flow_runs/filter", json={
                    "deployments": {"id": {"any_": [d["id"]]}},
                    "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
                    "sort": "EXPECTED_START_TIME_ASC", "limit": 1}).json()
                last = _http("POST", f"{api_url}/flow_runs/filter", json={
                    "deployments": {"id": {"any_": [d["id"]]}},
                    "flow_runs": {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]}}},
                    "sort": "END_TIME_DESC", "limit": 1}).json()
                st["deployments"].append({
                    "name": f"{flows.get(d['flow_id'], '?')}/{d['name']}",
                    "schedules": [f"{s['schedule'].get('cron')} ({s['schedule'].get('timezone')})"
                                  + ("" if s.get("active", True) else " inactive") for s in d.get("schedules", [])],
                    "paused": d.get("paused"),
                    "next_run": runs[0]["expected_start_time"] if runs else None,
                    "last_run": (f"{last[0]['state']['name']} at {last[0].get('end_time')}" if last else None)})
        except Exception as exc:  # noqa: BLE001
            st["error"] = str(exc)
    return st


def _deployment_id(api_url: str, deployment: str) -> str:
    if "/" not in deployment:
        raise SchedulingError(f"deployment {deployment!r}: give it as FLOW/DEPLOYMENT, e.g. {DEFAULT_DEPLOYMENT}")
    flow_name, dep_name = deployment.split("/", 1)
    r = _http("GET", f"{api_url}/deployments/name/{flow_name}/{dep_name}")
    if r.status_code == 404:
        raise SchedulingError(f"no deployment {deployment!r} on {api_url} (run `drpoc schedule up`)")
    r.raise_for_status()
    return r.json()["id"]


def drill_now(deployment: str = DEFAULT_DEPLOYMENT, *, api_url: str | None = None,
              parameters: Mapping[str, Any] | None = None, wait: bool = False, timeout: float = 900.0,
              state_dir: Path | None = None, repo: Path = REPO_ROOT,
              out: Callable[[str], None] = print) -> dict[str, Any]:
    """Create a flow run of `deployment` now (what `prefect deployment run` does); with `wait`, follow it until
    it ends or `timeout` passes."""
    if api_url is None:
        server = read_record(SchedulerPaths(Path(state_dir) if state_dir else default_state_dir(repo)), "server")
        api_url = (server or {}).get("api_url") or os.environ.get("PREFECT_API_URL") or api_url_for(DEFAULT_PORT)
    if not api_healthy(api_url):
        raise SchedulingError(f"no Prefect API at {api_url}: start the scheduler with `drpoc schedule up`")
    dep_id = _deployment_id(api_url, deployment)
    body: dict[str, Any] = {"tags": ["drill-now"]}
    if parameters:
        body["parameters"] = dict(parameters)
    r = _http("POST", f"{api_url}/deployments/{dep_id}/create_flow_run", json=body)
    if r.status_code >= 400:
        raise SchedulingError(f"could not create the flow run: {r.status_code} {r.text[:500]}")
    run = r.json()
    ui = api_url[:-len("/api")] if api_url.endswith("/api") else api_url
    res = {"flow_run_id": run["id"], "name": run["name"], "url": f"{ui}/runs/flow-run/{run['id']}",
           "state": run["state"]["type"] if run.get("state") else None}
    out(f"flow run {run['name']} ({run['id']}) created for {deployment}: {res['url']}")
    if not wait:
        return res
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        fr = _http("GET", f"{api_url}/flow_runs/{run['id']}").json()
        state = fr.get("state") or {}
        if state.get("name") != last:
            last = state.get("name")
            out(f"  {last}")
        if state.get("type") in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            res.update(state=state["type"], state_name=state.get("name"), message=state.get("message"))
            if state.get("message") and state["type"] != "COMPLETED":
                out(state["message"])
            return res
        time.sleep(2)
    res.update(state="TIMEOUT", message=f"the run had not ended after {timeout:g} s (it goes on; see {res['url']})")
    out(res["message"])
    return res


# ==============================================================================================================
# argparse helpers for the `drpoc` CLI


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cmd_schedule_up(args: argparse.Namespace) -> int:
    try:
        schedule_up(port=args.port, state_dir=args.state_dir, worker=not args.no_worker, timeout=args.timeout,
                    out=_err)
    except SchedulingError as exc:
        _err(f"drpoc schedule up: {exc}")
        return 1
    return 0


def _cmd_schedule_down(args: argparse.Namespace) -> int:
    res = schedule_down(state_dir=args.state_dir, timeout=args.timeout, out=_err)
    return 1 if "still running" in res.values() else 0


def _cmd_schedule_status(args: argparse.Namespace) -> int:
    st = schedule_status(state_dir=args.state_dir)
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print(f"server: {'running' if st['server']['running'] else 'not running'}"
              + (f" (pid {st['server']['pid']})" if st['server']['running'] else "")
              + f"   API {st['api_url']}: {'healthy' if st['healthy'] else 'NOT answering'}")
        print(f"worker: {'running' if st['worker']['running'] else 'not running'}"
              + (f" (pid {st['worker']['pid']})" if st['worker']['running'] else ""))
        for d in st["deployments"]:
            print(f"  {d['name']:<40} {', '.join(d['schedules']) or 'no schedule'}"
                  + ("  PAUSED" if d["paused"] else "")
                  + f"\n  {'':<40} next: {d['next_run'] or '-'}   last: {d['last_run'] or '-'}")
        if st.get("error"):
            print(f"error reading deployments: {st['error']}")
        if st["healthy"]:
            print(f"UI: {st['api_url'][:-4] if st['api_url'].endswith('/api') else st['api_url']}")
    return 0 if st["healthy"] and st["worker"]["running"] else 1


def _parse_param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: use KEY=VALUE (VALUE as JSON, else a string)")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _cmd_drill_now(args: argparse.Namespace) -> int:
    try:
        res = drill_now(args.deployment, api_url=args.api_url, parameters=dict(args.param or []),
                        wait=args.wait, timeout=args.timeout, state_dir=args.state_dir, out=_err)
    except SchedulingError as exc:
        _err(f"drpoc drill now: {exc}")
        return 1
    if not args.wait:
        return 0
    return {"COMPLETED": 0, "TIMEOUT": 2}.get(res["state"], 1)


def add_schedule_parser(subparsers) -> argparse.ArgumentParser:
    """`drpoc schedule up|down|status` — mount with `add_schedule_parser(sub)`; each leaf sets `func`."""
    sched = subparsers.add_parser("schedule", help="the local Prefect scheduler: server, deployments, worker",
                                  description="Run the drills on their schedules (docs/SCHEDULING.md).")
    ssub = sched.add_subparsers(dest="schedule_cmd", required=True)
    up = ssub.add_parser("up", help="start the Prefect server (127.0.0.1), apply flows/prefect.yaml, start a worker")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help="server port on 127.0.0.1 (default %(default)s)")
    up.add_argument("--no-worker", action="store_true", help="do not start a worker (workers run elsewhere)")
    up.add_argument("--timeout", type=float, default=180.0, help="bound for each wait, seconds (%(default)s)")
    up.set_defaults(func=_cmd_schedule_up)
    down = ssub.add_parser("down", help="stop the worker and the server started by `schedule up`")
    down.add_argument("--timeout", type=float, default=20.0, help="seconds before SIGKILL (%(default)s)")
    down.set_defaults(func=_cmd_schedule_down)
    status = ssub.add_parser("status", help="server, worker, deployments, next and last runs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_cmd_schedule_status)
    for p in (up, down, status):
        p.add_argument("--state-dir", type=Path, default=None,
                       help="PREFECT_HOME of the scheduler (default: <repo>/.state/prefect)")
    return sched


def add_drill_parser(subparsers) -> argparse.ArgumentParser:
    """`drpoc drill now [--deployment NAME] [--wait]` — mount with `add_drill_parser(sub)`."""
    drill = subparsers.add_parser("drill", help="run a scheduled drill now")
    dsub = drill.add_subparsers(dest="drill_cmd", required=True)
    now = dsub.add_parser("now", help="trigger a deployment at once (default: the weekly drill)")
    now.add_argument("--deployment", default=DEFAULT_DEPLOYMENT, help="FLOW/DEPLOYMENT (default %(default)s)")
    now.add_argument("--param", action="append", type=_parse_param, metavar="KEY=VALUE",
                     help='a flow parameter, VALUE as JSON: --param \'objectives={"objective_rto_seconds": 30}\'')
    now.add_argument("--wait", action="store_true", help="wait for the result (exit 0 passed, 1 not, 2 timeout)")
    now.add_argument("--timeout", type=float, default=900.0, help="bound of --wait, seconds (%(default)s)")
    now.add_argument("--api-url", default=None, help="Prefect API (default: the local scheduler's)")
    now.add_argument("--state-dir", type=Path, default=None, help=argparse.SUPPRESS)
    now.set_defaults(func=_cmd_drill_now)
    return drill
