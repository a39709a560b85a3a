"""History across drills: pass rate, trends against objectives, last passing drill and schedule compliance.

A drill "passed" only when its ``drpoc`` verdict says so; a precondition failure, an abort, a failure or a drill
that died (its orchestrator stopped mid-drill) count as not passed, and generic journals (no verdict) are left out
of the rate. A drill that did not start (``not-started``: locked, unreachable…) touched nothing: it is counted
apart, with its cause, never in the rate. A journal that cannot be trusted (modified, not in its ledger, badly
signed, its ledger entry altered: ``DrillRecord.trusted`` is False) is excluded from the rate, the trends and the
last passing drill, and listed in ``History.excluded``. A scenario is overdue when its last
*passing* drill is older than its expected interval (``expected_interval_days``; ``vpn_outage`` is weekly unless
told otherwise): a drill that ran but failed has not shown that recovery works.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from ..core import fmt
from .model import DrillRecord

__all__ = ["DEFAULT_INTERVAL_DAYS", "TREND_METRICS", "TrendPoint", "ScenarioHistory", "History", "build_history",
           "objective_for"]

DEFAULT_INTERVAL_DAYS: dict[str, float] = {"vpn_outage": 7.0}
# metric → objective names that bound it (first found wins)
TREND_METRICS: dict[str, tuple[str, ...]] = {
    "detection_seconds": ("max_detection_seconds", "detection_seconds"),
    "rto_seconds": ("rto_seconds", "max_rto_seconds"),
    "catch_up_seconds": ("max_catch_up_seconds", "catch_up_seconds"),
}
TREND_LABELS = {"detection_seconds": "detection", "rto_seconds": "recovery (RTO)", "catch_up_seconds": "catch-up"}


def objective_for(rec: DrillRecord, metric: str) -> float | None:
    names = TREND_METRICS.get(metric, (metric, f"max_{metric}"))
    for obj in rec.objectives:
        if obj.name in names:
            try:
                return float(obj.objective)
            except (TypeError, ValueError):
                return None
    return None


@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    started: datetime
    passed: bool | None
    values: dict[str, float | None]
    objectives: dict[str, float | None]
    rpo_seconds: float | None = None  # DrillRecord.rpo_seconds: shown in the fleet view, not in the charts


@dataclass
class ScenarioHistory:
    scenario: str
    drills: int = 0
    judged: int = 0
    passed: int = 0
    not_started: int = 0
    excluded: int = 0
    last_run: DrillRecord | None = None
    last_pass: DrillRecord | None = None
    interval_days: float | None = None
    due: datetime | None = None
    overdue: bool = False
    overdue_days: float | None = None
    trend: list[TrendPoint] = field(default_factory=list)

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.judged if self.judged else None

    @property
    def schedule_status(self) -> str:
        if self.interval_days is None:
            return "no schedule"
        if self.last_pass is None:
            return "OVERDUE: never passed" if self.last_run else "OVERDUE: never run"
        if self.overdue:
            return f"OVERDUE by {fmt.num(self.overdue_days, places=1)} day(s)"
        return "on schedule"


@dataclass
class History:
    generated_at: datetime
    drills: int
    judged: int
    passed: int
    scenarios: list[ScenarioHistory]
    expected_interval_days: dict[str, float]
    first: datetime | None = None
    last: datetime | None = None
    not_started: list[DrillRecord] = field(default_factory=list)  # drills that never got going, with a cause
    excluded: list[DrillRecord] = field(default_factory=list)  # journals that cannot be trusted
    died: int = 0  # judged drills whose orchestrator died (counted as not passed)

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.judged if self.judged else None

    @property
    def overdue(self) -> list[ScenarioHistory]:
        return [s for s in self.scenarios if s.interval_days is not None and (s.overdue or s.last_pass is None)]

    @property
    def schedule(self) -> dict[str, float | None]:
        """The schedule in force, as ``build_history`` takes it again (a default it removed stays removed)."""
        out: dict[str, float | None] = {k: None for k in DEFAULT_INTERVAL_DAYS}
        out.update(self.expected_interval_days)
        return out


def build_history(records: Iterable[DrillRecord], expected_interval_days: Mapping[str, float | None] | None = None,
                  now: datetime | None = None) -> History:
    """Summarise ``records``. ``expected_interval_days`` maps scenario → days between drills (merged over the
    default weekly ``vpn_outage``; a None value removes a schedule). ``now`` defaults to the current UTC time."""
    now = now or datetime.now(timezone.utc)
    schedule: dict[str, float] = dict(DEFAULT_INTERVAL_DAYS)
    for k, v in (expected_interval_days or {}).items():
        if v is None:
            schedule.pop(k, None)
        else:
            schedule[k] = float(v)
    records = sorted(records, key=lambda r: (r.started is None, r.started.timestamp() if r.started else 0.0))
    by_scenario: dict[str, ScenarioHistory] = {}
    judged = passed = died = 0
    not_started: list[DrillRecord] = []
    excluded: list[DrillRecord] = []
    for rec in records:
        sh = by_scenario.setdefault(rec.scenario, ScenarioHistory(rec.scenario))
        sh.drills += 1
        if not rec.trusted:
            sh.excluded += 1
            excluded.append(rec)
            continue
        if rec.not_started:
            sh.not_started += 1
            not_started.append(rec)
            continue
        if rec.started is not None:
            sh.last_run = rec
        if rec.passed is not None:
            died += rec.verdict == "died"
            sh.judged += 1
            judged += 1
            if rec.passed:
                sh.passed += 1
                passed += 1
                if rec.started is not None:
                    sh.last_pass = rec
        if rec.is_drpoc and rec.started is not None:
            sh.trend.append(TrendPoint(rec.run_id, rec.started, rec.passed,
                                       {m: rec.metric(m) for m in TREND_METRICS},
                                       {m: objective_for(rec, m) for m in TREND_METRICS}, rec.rpo_seconds))
    for name in schedule:
        by_scenario.setdefault(name, ScenarioHistory(name))
    for sh in by_scenario.values():
        sh.interval_days = schedule.get(sh.scenario)
        if sh.interval_days is None:
            continue
        if sh.last_pass is None or sh.last_pass.started is None:
            sh.overdue = True
            continue
        sh.due = sh.last_pass.started + timedelta(days=sh.interval_days)
        if now > sh.due:
            sh.overdue = True
            sh.overdue_days = (now - sh.due).total_seconds() / 86400.0
    dated = [r.started for r in records if r.started is not None]
    return History(generated_at=now, drills=len(records), judged=judged, passed=passed,
                   scenarios=sorted(by_scenario.values(), key=lambda s: s.scenario),
                   expected_interval_days=schedule, first=min(dated) if dated else None,
                   last=max(dated) if dated else None, not_started=not_started, excluded=excluded, died=died)


def parse_schedule(items: Iterable[str]) -> dict[str, Any]:
    """``["vpn_outage=7", "failover=30", "old=none"]`` → ``{"vpn_outage": 7.0, "failover": 30.0, "old": None}``."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"schedule {item!r}: expected SCENARIO=DAYS, e.g. vpn_outage=7")
        value = value.strip().lower()
        if value in ("none", "off", ""):
            out[name.strip()] = None
            continue
        try:
            days = float(value)
        except ValueError:
            raise ValueError(f"schedule {item!r}: DAYS must be a number of days, e.g. vpn_outage=7") from None
        if days <= 0:
            raise ValueError(f"schedule {item!r}: DAYS must be positive")
        out[name.strip()] = days
    return out
