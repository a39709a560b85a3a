"""The one verdict of a drill, and the one wording of its reasons. Pure.

The drill control judges a drill from what it saw (`judge` with live facts); the scheduler and the evidence reader
judge it again from the journal alone (`facts_from_journal` → `judge`), so a journal whose recorded verdict
contradicts its own content is caught — with the same rule and the same sentences.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

__all__ = ["STATUSES", "NOT_STARTED_CAUSES", "Verdict", "Facts", "judge", "facts_from_journal", "failing_probes",
           "reasons"]

STATUSES = ("passed", "failed", "precondition-failed", "fault-not-effective", "aborted", "not-started", "died")
NOT_STARTED_CAUSES = ("locked", "no-inventory", "bad-input", "unreachable", "auth", "infeasible", "setup-error")
# statuses where nothing was measured worth judging against objectives
_UNJUDGED = ("precondition-failed", "aborted", "not-started", "died")
_EXC_PREFIX = re.compile(r"^(?:[\w.]+(?:Error|Failed|Exception|Execution): )+")


class reasons:  # noqa: N801 — a namespace of sentences, used as reasons.lost(…)
    """Every sentence a verdict can hold, written once."""

    @staticmethod
    def precondition(failing: list[str]) -> str:
        return ("steady state not met before the method (" + (", ".join(failing) or "see steady_states.before")
                + "): no fault was injected")

    @staticmethod
    def interrupted(status: str) -> str:
        return f"the run was {status} before the drill finished"

    @staticmethod
    def fault_not_effective() -> str:
        return "the fault did not take effect: the replica never lost its IO connection"

    @staticmethod
    def no_fault() -> str:
        return "no fault was injected"

    @staticmethod
    def activity_failed(name: str, error: str) -> str:
        return f"activity '{name}' failed: {error[:300]}"

    @staticmethod
    def deviated(failing: list[str]) -> str:
        return "steady state deviated after the method (" + (", ".join(failing) or "?") + ")"

    @staticmethod
    def lost(ids: list[Any]) -> str:
        shown = ", ".join(map(str, ids[:10])) + (" …" if len(ids) > 10 else "")
        return f"{len(ids)} acknowledged write(s) missing on the replica" + (f": {shown}" if shown else "")

    @staticmethod
    def unexpected(n: int) -> str:
        return f"{n} unexpected row(s) on the replica"

    @staticmethod
    def duplicated(n: int) -> str:
        return f"{n} write(s) duplicated on the replica"

    @staticmethod
    def objective(result: Mapping[str, Any]) -> str:
        label = result.get("label") or result.get("name")
        if result.get("achieved") is None:
            return f"objective not measured: {label}"
        return f"objective missed: {label}: achieved {result['achieved']} > objective {result.get('objective')}"

    @staticmethod
    def split_brain(times: list[float]) -> str:
        return (f"split brain: source and replica both writable in {len(times)} timeline sample(s), first at "
                f"t={times[0]:.1f}s — the replica must stay read-only while the source lives")

    @staticmethod
    def not_started(cause: str, why: str | None) -> str:
        return f"drill not started ({cause}): {why or 'see the log'}"


@dataclass
class Verdict:
    passed: bool
    status: str
    reasons: list[str] = field(default_factory=list)
    cause: str | None = None  # not-started only

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"passed": self.passed, "status": self.status, "reasons": list(self.reasons)}
        if self.cause is not None:
            out["cause"] = self.cause
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Verdict | None":
        if not isinstance(data, Mapping):
            return None
        status = data.get("status")
        passed = data.get("passed")
        if not isinstance(status, str):
            status = "passed" if passed is True else "failed"
        found = data.get("reasons")
        return cls(passed=passed is True, status=status,
                   reasons=[str(r) for r in found] if isinstance(found, list) else [],
                   cause=data.get("cause") if isinstance(data.get("cause"), str) else None)


@dataclass
class Facts:
    """What a verdict is decided on. `lost`/`unexpected`/`duplicated` are None when the writes were not checked."""

    chaos_status: str | None = "completed"
    steady_before: Mapping[str, Any] | None = None
    steady_after: Mapping[str, Any] | None = None
    deviated: bool = False
    runs: list[Mapping[str, Any]] = field(default_factory=list)
    fault_injected: bool = False
    expect_outage: bool = True
    outage_detected: bool = False
    lost: list[Any] | None = None
    unexpected: list[Any] | None = None
    duplicated: list[Any] | None = None
    max_lost_writes: int = 0
    objective_results: list[Mapping[str, Any]] = field(default_factory=list)
    extra_reasons: list[str] = field(default_factory=list)
    not_started: tuple[str, str | None] | None = None
    died: bool = False
    split_brain: list[float] = field(default_factory=list)  # times of samples with more than one writable server


def _mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a mapping, else an empty one (journals are untrusted input)."""
    return value if isinstance(value, Mapping) else {}


def failing_probes(state: Mapping[str, Any] | None) -> list[str]:
    """The probes of a steady-state block that failed or missed their tolerance."""
    probes = (state or {}).get("probes") if isinstance(state, Mapping) else None
    out = []
    for p in probes or []:
        if not isinstance(p, Mapping):
            continue
        if p.get("status") != "succeeded" or p.get("tolerance_met") is False:
            activity = _mapping(p.get("activity"))
            out.append(str(activity.get("name", "?")))
    return out


def _activity_error(run: Mapping[str, Any]) -> str:
    exc = run.get("exception")
    err = str(exc[-1] if isinstance(exc, list) and exc else run.get("output", ""))
    # chaoslib wraps the activity's error in its own: keep the sentence, not the class names
    return _EXC_PREFIX.sub("", err.strip())


def judge(f: Facts) -> Verdict:
    """A drill passes only when everything that can make it worthless or wrong is ruled out."""
    if f.not_started is not None:
        cause, why = f.not_started
        return Verdict(False, "not-started", [reasons.not_started(cause, why)], cause=cause)
    out: list[str] = []
    status = "passed"
    if f.died:
        status = "died"
    elif f.steady_before is not None and not f.steady_before.get("steady_state_met"):
        out.append(reasons.precondition(failing_probes(f.steady_before)))
        status = "precondition-failed"
    elif f.chaos_status in ("interrupted", "aborted"):
        out.append(reasons.interrupted(str(f.chaos_status)))
        status = "aborted"
    if status == "passed" and f.expect_outage:
        if f.fault_injected and not f.outage_detected:
            out.append(reasons.fault_not_effective())
            status = "fault-not-effective"
        elif not f.fault_injected:
            out.append(reasons.no_fault())
            status = "fault-not-effective"
    for run in f.runs:
        if run.get("status") == "failed":
            activity = _mapping(run.get("activity"))
            out.append(reasons.activity_failed(str(activity.get("name", "?")), _activity_error(run)))
    if f.deviated:
        out.append(reasons.deviated(failing_probes(f.steady_after)))
    if f.lost is not None and len(f.lost) > f.max_lost_writes:
        out.append(reasons.lost(list(f.lost)))
    if f.unexpected:
        out.append(reasons.unexpected(len(f.unexpected)))
    if f.duplicated:
        out.append(reasons.duplicated(len(f.duplicated)))
    if f.split_brain:
        out.append(reasons.split_brain(f.split_brain))
    # objectives mean something only for a drill that ran: a precondition failure or an abort already says it all
    if status not in _UNJUDGED:
        for r in f.objective_results:
            if r.get("passed") is False and r.get("name") != "max_lost_writes":
                out.append(reasons.objective(r))
    out.extend(f.extra_reasons)
    if out and status == "passed":
        status = "failed"
    return Verdict(passed=not out and status == "passed", status=status, reasons=out)


def split_brain_times(samples: Iterable[Any]) -> list[float]:
    """When the timeline saw more than one writable server of the pair (`writers` > 1)."""
    out = []
    for s in samples or []:
        if isinstance(s, Mapping) and isinstance(s.get("writers"), int) and not isinstance(s.get("writers"), bool) \
                and s["writers"] > 1 and isinstance(s.get("t"), (int, float)):
            out.append(float(s["t"]))
    return out


def facts_from_journal(journal: Mapping[str, Any]) -> Facts:
    """The facts as a journal records them, to judge it again independently of the verdict it carries."""
    drpoc = _mapping(journal.get("drpoc"))
    steady = _mapping(journal.get("steady_states"))
    events = [e for e in drpoc.get("events") or [] if isinstance(e, Mapping)]
    names = {e.get("name") for e in events}
    writes = _mapping(drpoc.get("writes"))
    metrics = _mapping(drpoc.get("metrics"))
    objectives = _mapping(drpoc.get("objectives"))
    settings = _mapping(drpoc.get("settings"))
    recorded = Verdict.from_dict(drpoc.get("verdict"))

    def ids(key: str) -> list[Any] | None:
        value = writes.get(key)
        return list(value) if isinstance(value, list) else None

    lost = ids("lost")
    if not lost and isinstance(metrics.get("lost_writes"), (int, float)) and metrics["lost_writes"] > 0:
        lost = [None] * int(metrics["lost_writes"])  # counted but not listed: still lost
    max_lost = objectives.get("max_lost_writes")
    return Facts(
        chaos_status=journal.get("status") if isinstance(journal.get("status"), str) else None,
        steady_before=steady.get("before") if isinstance(steady.get("before"), Mapping) else None,
        steady_after=steady.get("after") if isinstance(steady.get("after"), Mapping) else None,
        deviated=journal.get("deviated") is True,
        runs=[r for r in journal.get("run") or [] if isinstance(r, Mapping)],
        fault_injected="fault_injected" in names,
        # a run without our control says nothing about an outage it was meant to cause
        expect_outage=bool(drpoc) and settings.get("expect_outage") is not False,
        outage_detected="outage_detected" in names,
        lost=lost, unexpected=ids("unexpected"), duplicated=ids("duplicated"),
        max_lost_writes=int(max_lost) if isinstance(max_lost, (int, float)) else 0,
        objective_results=[r for r in drpoc.get("objective_results") or [] if isinstance(r, Mapping)],
        not_started=(recorded.cause or "setup-error", None) if recorded and recorded.status == "not-started"
        else None,
        died=bool(recorded and recorded.status == "died"),
        split_brain=split_brain_times(_mapping(drpoc.get("timeline")).get("samples") or []),
        extra_reasons=blast_radius_reasons(drpoc.get("pair"),
                                           _mapping(drpoc.get("blast_radius")).get("leaks") or []),
    )


def blast_radius_reasons(pair: Any, leaks: Iterable[Any]) -> list[str]:
    """One reason per other pair a fleet drill hit (journal `blast_radius.leaks`)."""
    out = []
    for leak in leaks or []:
        if not isinstance(leak, Mapping):
            continue
        t = leak.get("t")
        when = f" at t={t:.1f}s" if isinstance(t, (int, float)) and not isinstance(t, bool) else ""
        out.append(f"blast radius: the drill of pair {pair or '?'} hit pair {leak.get('pair', '?')}{when} "
                   f"({leak.get('what', '?')})")
    return out


def merge_reasons(*lists: Iterable[str]) -> list[str]:
    """Reasons from several judges, each sentence once, in order."""
    seen: list[str] = []
    for items in lists:
        for r in items:
            if r not in seen:
                seen.append(r)
    return seen
