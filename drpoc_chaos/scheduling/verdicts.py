"""What the scheduler decides, and the artifacts it publishes, all pure (no process, no Prefect, no site):

- what makes a drill "not passed" (`evaluate_drill`) and a DR posture "broken" (`evaluate_steady_state`), from a
  journal and `chaos run`'s exit code;
- the experiment reduced to its steady-state hypothesis (`steady_state_experiment`);
- the artifacts' content: markdown summaries, the metrics table, links (`drill_markdown`, `metrics_table`,
  `steady_state_markdown`, `skipped_markdown`, `file_url`);
- the late-run guard (`late_skip_reason`): a run that starts long after its scheduled time is skipped, not run in a
  pile after a worker outage.
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core import fmt
from ..core.model import DrillResult as Recorded
from ..core.verdict import facts_from_journal, judge
from ..core.verdict import reasons as verdict_reasons
from ..evidence.redact import redact
from .settings import DRILL_CONTROL_MODULE, utc_now

# ==============================================================================================================
# small helpers


def slug(text: str) -> str:
    """Lowercase letters, digits and dashes (what Prefect accepts in artifact keys)."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s or "drill"


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """A log line or message with every secret value replaced (the archive's rules: evidence.redact)."""
    return redact(text, secrets)


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
    rec = Recorded.from_journal(journal)
    verdict = rec.verdict if rec is not None else None
    if rec is None:
        _add(reasons, "the journal has no drpoc verdict: is the drpoc-drill control declared in the experiment?")
    elif verdict is None:
        _add(reasons, "the journal's drpoc key has no verdict")
    else:
        for r in verdict.reasons:
            _add(reasons, r)
        if not verdict.passed and not verdict.reasons:
            _add(reasons, f"verdict: {verdict.status or 'not passed'}")
    # When the verdict did not pass, its reasons explain why. When it passed (or is missing), judge the journal
    # again — the same rule as the control, from what the journal itself records: a pass that contradicts the
    # journal is not a pass.
    status = journal.get("status")
    if verdict is None or verdict.passed:
        for r in judge(facts_from_journal(journal)).reasons:
            if rec is None and r == verdict_reasons.no_fault():
                continue  # without our control nothing records the fault: already said above
            _add(reasons, r)
        if status != "completed":
            _add(reasons, f"the Chaos Toolkit run ended '{status}'")
        if exit_code not in (0, None):
            _add(reasons, f"chaos exited with code {exit_code}")
    if rec is not None and not rec.archived_as:
        _add(reasons, "the journal was not archived (see the chaos output)")
    passed = not reasons
    if passed:
        status_ = "passed"
    elif verdict is not None and not verdict.passed:
        status_ = verdict.status or "failed"
    else:
        status_ = "failed" if verdict is not None else "error"
    metrics = rec.metrics if rec is not None else {}
    writes = rec.writes if rec is not None else {}
    objective_results = rec.objective_results if rec is not None else []
    return DrillResult(
        experiment=experiment, passed=passed, status=status_,
        reasons=reasons, exit_code=exit_code, run_status=status, deviated=journal.get("deviated"),
        run_id=rec.run_id if rec else None, scenario=rec.scenario if rec else None,
        title=(rec.title if rec else None) or (journal.get("experiment") or {}).get("title"),
        started=(rec.started if rec else None) or journal.get("start"),
        ended=(rec.ended if rec else None) or journal.get("end"),
        archived_as=rec.archived_as if rec else None,
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
              + (" (deviated)" if result.deviated else "") + f", exit code {fmt.value(result.exit_code)} |",
              f"| writes attempted / acknowledged / observed | {fmt.value(result.writes.get('attempted'))} / "
              f"{fmt.value(result.writes.get('acknowledged'))} / {fmt.value(result.writes.get('observed'))} |",
              "| archived journal | "
              + (f"[{Path(result.archived_as).name}]({file_url(result.archived_as)})" if result.archived_as
                 else "**not archived**") + " |", ""]
    if result.reasons:
        lines += ["## Reasons", ""] + [f"- {r}" for r in result.reasons] + [""]
    if result.objective_results:
        lines += ["## DR metrics vs objectives", "", "| objective | achieved | objective | met |",
                  "|---|---:|---:|:---:|"]
        for r in result.objective_results:
            passed = r.get("passed")
            met = "yes" if passed is True else "**NO**" if passed is False else "n/a"
            lines.append(f"| {r.get('label') or r.get('name')} | {fmt.value(r.get('achieved'))} | "
                         f"{fmt.value(r.get('objective'))} | {met} |")
        lines.append("")
    key = ("detection_seconds", "outage_seconds", "tunnel_recovery_seconds", "replica_reconnect_seconds",
           "catch_up_seconds", "rto_seconds", "recovery_time_seconds", "lost_writes")
    shown = [(k, result.metrics[k]) for k in key if k in result.metrics]
    if shown:
        lines += ["## Key metrics", ""] + [f"- {k}: {fmt.value(v)}" for k, v in shown] + [""]
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
            last = str(exc[-1] if isinstance(exc, list) and exc else exc or "failed").strip().splitlines()[-1:]
            detail = last[0] if last else "failed"
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
    if scheduled_start is None or late <= max_lateness_seconds:  # no scheduled time: never late
        return None
    return (f"skipped: late by {late:.0f} s (scheduled for {scheduled_start.isoformat()}, "
            f"max_lateness_seconds={max_lateness_seconds:g}); the next scheduled run will drill")


def skipped_markdown(flow_name: str, reason: str) -> str:
    return (f"# {flow_name}: run skipped\n\n{reason}.\n\nRuns that start long after their scheduled time (a worker "
            "was down, a queue was blocked) are skipped instead of being run in a pile. See docs/SCHEDULING.md.\n")
