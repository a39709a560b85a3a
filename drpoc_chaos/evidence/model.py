"""The review model: journals in, normalised drill records and a list of problems out.

``load_journals`` never raises for a bad input: an unreadable, corrupt or truncated file, a journal missing keys,
an unknown ``drpoc`` schema, an empty archive or a broken ledger each become a ``Problem`` with a sentence a person
can act on, and every other journal is still loaded. A generic Chaos Toolkit journal without the ``drpoc`` key is a
record too; its DR fields are ``None`` and shown as "n/a". Every accessor tolerates missing keys and wrong types, so
journals from newer or older drills (and hand-edited ones) can be reviewed.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from ..core.verdict import facts_from_journal, judge
from .archive import parse_archive_name, parse_utc, slugify
from .ledger import INTENT_SUFFIX, LEDGER_NAME, Finding, VerifyReport, load_public_key, verify_archive
from .redact import redact

__all__ = [
    "SCHEMA", "Problem", "Objective", "ProbeResult", "SteadyState", "Rollback", "Writes", "Event", "Scope",
    "DrillRecord", "load_journals", "normalise_journal", "expand_inputs", "Leak", "BlastRadius", "ONLY_PAIR",
]

SCHEMA = "drpoc.journal/1"
# drpoc keys the review expects (docs/JOURNAL.md); a missing one is reported and its facts shown as n/a.
EXPECTED_DRPOC_KEYS = ("run_id", "scenario", "started", "ended", "scope", "objectives", "timeline", "events",
                       "writes", "metrics", "objective_results", "verdict")
EXPECTED_TYPES: dict[str, type] = {"scope": dict, "objectives": dict, "timeline": dict, "writes": dict,
                                   "metrics": dict, "verdict": dict, "safety": dict, "controller": dict,
                                   "events": list, "objective_results": list}
EVENT_LABELS = {
    "drill_started": "drill started", "fault_injected": "fault", "outage_detected": "detection",
    "recovery_started": "recovery started", "tunnel_up": "tunnel up", "io_reconnected": "IO reconnected",
    "caught_up": "caught up", "drill_ended": "drill ended", "deadman_armed": "dead-man armed",
    "deadman_disarmed": "dead-man disarmed", "deadman_fired": "dead-man fired",
    # the site failover drill
    "site_lost_detected": "site lost", "drained": "drained", "promoted": "promoted",
    "first_write_new": "first write on new primary", "fenced": "old primary fenced", "errant_found": "errant",
    "reseeded": "re-seeded", "repointed": "re-pointed", "switched_back": "switched back",
    "first_write_back": "writes back",
}
UNITS = {"seconds": "s", "writes": "writes", "rate": "/s"}
# Verdict statuses. A "not-started" drill never got going (nothing was touched): not a drill failure, not judged.
# A "died" drill lost its orchestrator mid-drill: a failure of the drill, judged.
JUDGED_STATUSES = ("passed", "failed", "precondition-failed", "fault-not-effective", "aborted", "died")
NOT_STARTED = "not-started"
NOT_STARTED_CAUSES = {
    "locked": "another drill held the gateway's lock", "no-inventory": "no usable inventory",
    "unreachable": "a host could not be reached", "auth": "authentication failed",
    "bad-input": "the drill's settings were refused", "setup-error": "the drill's setup failed",
    "infeasible": "the replica's settings cannot meet the drill's objectives",
}
# Integrity of one journal. Only "verified" is green; "no ledger" (a loose journal) and "unconfirmed" (its hash
# matches, but its archive has integrity findings) are shown amber and still counted; every other status means the
# journal cannot be trusted: it is left out of the pass rate and the trends and listed as excluded.
TRUSTED_INTEGRITY = ("verified", "unconfirmed", "no ledger")
# the pair of a journal that names none and whose scope names no replica either
ONLY_PAIR = "(only pair)"


# ------------------------------------------------------------------------------------------------ data classes
@dataclass(frozen=True)
class Problem:
    """An input the review could not (fully) use. ``kind``: input, empty, schema, missing-keys, integrity."""
    source: str
    message: str
    kind: str = "input"

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


@dataclass(frozen=True)
class Objective:
    name: str
    objective: Any
    achieved: Any
    passed: bool | None
    unit: str = ""


@dataclass(frozen=True)
class ProbeResult:
    name: str
    status: str | None
    tolerance_met: bool | None


@dataclass(frozen=True)
class SteadyState:
    met: bool | None
    probes: tuple[ProbeResult, ...] = ()

    @property
    def label(self) -> str:
        return {True: "met", False: "NOT met", None: "not checked"}[self.met]


@dataclass(frozen=True)
class Rollback:
    name: str
    status: str | None
    duration: float | None
    error: str | None = None


@dataclass(frozen=True)
class Writes:
    attempted: int | None = None
    acknowledged: int | None = None
    observed: int | None = None
    lost: tuple[Any, ...] = ()
    unexpected: tuple[Any, ...] = ()
    duplicated: tuple[Any, ...] = ()
    known: bool = False  # False when the journal has no write ledger (generic journal)


@dataclass(frozen=True)
class Event:
    name: str
    t: float | None
    at: datetime | None

    @property
    def label(self) -> str:
        return EVENT_LABELS.get(self.name, self.name.replace("_", " "))


@dataclass(frozen=True)
class Scope:
    inventory: str | None = None
    inventory_path: str | None = None
    connection: str | None = None
    fault_site: str | None = None
    gateways: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    replica: str | None = None
    subnets: dict[str, str] = field(default_factory=dict)

    @property
    def sites(self) -> list[str]:
        return sorted(set(self.gateways) | set(self.subnets))


@dataclass(frozen=True)
class Leak:
    """Another pair hurt while this drill held its fault (``drpoc.blast_radius.leaks``)."""
    pair: str | None
    t: float | None
    what: str | None


@dataclass(frozen=True)
class BlastRadius:
    """``drpoc.blast_radius``: the inventory's other pairs watched during the drill. ``recorded`` False: the
    journal says nothing (a single-pair inventory, an older drill)."""
    recorded: bool = False
    ok: bool | None = None
    watched: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    leaks: tuple[Leak, ...] = ()


@dataclass
class DrillRecord:
    """One journal, normalised. ``None`` means "not in the journal" and is shown as n/a."""
    path: str
    file: str
    run_id: str
    is_drpoc: bool
    schema: str | None
    scenario: str
    title: str
    started: datetime | None
    ended: datetime | None
    duration_seconds: float | None
    node: str | None
    user: str | None
    platform: str | None
    chaoslib_version: str | None
    drpoc_version: str | None
    scope: Scope
    objectives: list[Objective]
    metrics: dict[str, Any]
    verdict: str | None  # passed | failed | precondition-failed | fault-not-effective | aborted | None
    passed: bool | None
    reasons: list[str]
    steady_before: SteadyState
    steady_after: SteadyState
    rollbacks: list[Rollback]
    rollbacks_forced: bool | None
    writes: Writes
    chaos_status: str | None
    deviated: bool | None
    interval_seconds: float | None
    timeline: list[dict[str, Any]]
    events: list[Event]
    safety: dict[str, Any]
    sha256: str
    integrity: str = "no ledger"  # verified | unconfirmed | modified | not in ledger | no ledger | bad signature…
    integrity_detail: str = ""
    warnings: list[str] = field(default_factory=list)
    # the verdict rule (core.verdict) applied again to what the journal records: a recorded pass that its own
    # content contradicts shows here, with the verdict's own sentences
    rejudged: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    cause: str | None = None  # not-started drills: locked | no-inventory | unreachable | auth | bad-input | …
    died: dict[str, Any] | None = None  # died drills: detected_by, last_step, deadman, recover
    integrity_findings: list[str] = field(default_factory=list)  # findings of the archive naming this journal
    archive_findings: int = 0  # findings of the archive this journal is in (0 when not archived)
    # the replication pair drilled: ``drpoc.pair``; for a journal that names none (written before inventories
    # held several pairs) the scope's replica site, else the host of the scope's replica, else ONLY_PAIR
    pair: str = ONLY_PAIR
    pair_recorded: bool = False  # True when the journal itself names the pair
    blast_radius: BlastRadius = field(default_factory=BlastRadius)

    @property
    def verdict_label(self) -> str:
        if self.verdict == NOT_STARTED:
            return "not started" + (f" ({self.cause})" if self.cause else "")
        return self.verdict or "n/a"

    @property
    def not_started(self) -> bool:
        return self.verdict == NOT_STARTED

    @property
    def trusted(self) -> bool:
        """False when the journal was modified, is not in its ledger, is badly signed…: excluded from the history."""
        return self.integrity in TRUSTED_INTEGRITY

    @property
    def counted(self) -> bool:
        """Counted in the pass rate: a judged verdict from a journal that can be trusted."""
        return self.trusted and self.passed is not None and not self.not_started

    @property
    def first_reason(self) -> str | None:
        return self.reasons[0] if self.reasons else (self.issues[0] if self.issues else None)

    @property
    def deadman_fired(self) -> bool | None:
        """Whether the dead-man's switch fired (died drills: from the switch's record); None when unknown."""
        record = _d((self.died or {}).get("deadman")) or _d(_d(self.safety.get("deadman")).get("record"))
        flag = _d(self.safety.get("deadman")).get("fired")
        if record.get("fired_at") or record.get("outcome") in ("fired", "restored", "gave-up") or flag is True:
            return True
        if record or flag is False:
            return False
        return None

    def metric(self, name: str) -> float | None:
        return _num(self.metrics.get(name))

    @property
    def inventory(self) -> str | None:
        return self.scope.inventory

    @property
    def rpo_seconds(self) -> float | None:
        """The drill's RPO figure, as the review shows it: ``metrics.rpo_seconds`` ("data-loss window (RPO
        achieved)"), else what the ``rpo_seconds`` objective (then ``failover_rpo_seconds``) achieved, else
        ``metrics.rpo_exposure.max_seconds`` (the measure core.metrics judges that objective on)."""
        value = self.metric("rpo_seconds")
        for name in ("rpo_seconds", "failover_rpo_seconds"):
            if value is None:
                value = next((_num(o.achieved) for o in self.objectives if o.name == name), None)
        if value is None:
            value = _num(_d(self.metrics.get("rpo_exposure")).get("max_seconds"))
        return value

    def event_t(self, name: str) -> float | None:
        for ev in self.events:
            if ev.name == name:
                return ev.t
        return None


# ------------------------------------------------------------------------------------------------ helpers
def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if value == value else None  # NaN → None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _int(value: Any) -> int | None:
    n = _num(value)
    return int(n) if n is not None else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _unit(name: str) -> str:
    if name.endswith("_seconds") or name in ("rpo", "rto"):
        return "s"
    if "writes" in name:
        return "writes"
    if name.endswith("_per_second"):
        return "/s"
    return ""


def _activity_name(run: dict[str, Any]) -> str:
    act = _d(run.get("activity"))
    return _s(act.get("name")) or _s(act.get("type")) or "unnamed activity"


def _steady(value: Any) -> SteadyState:
    state = _d(value)
    if not state:
        return SteadyState(None)
    probes = tuple(ProbeResult(_activity_name(_d(p)), _s(_d(p).get("status")), _bool(_d(p).get("tolerance_met")))
                   for p in _l(state.get("probes")))
    return SteadyState(_bool(state.get("steady_state_met")), probes)


def _rollbacks(value: Any) -> list[Rollback]:
    out = []
    for item in _l(value):
        run = _d(item)
        exc = run.get("exception")
        error = None
        if isinstance(exc, list) and exc:
            error = str(exc[-1]).strip()
        elif isinstance(exc, str):
            error = exc.strip()
        out.append(Rollback(_activity_name(run), _s(run.get("status")), _num(run.get("duration")), error))
    return out


def _samples(timeline: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    out, dropped = [], 0
    for item in _l(timeline.get("samples")):
        sample = _d(item)
        t = _num(sample.get("t"))
        if t is None:
            dropped += 1
            continue
        clean = dict(sample)
        clean["t"] = t
        out.append(clean)
    out.sort(key=lambda s: s["t"])
    return out, dropped


def _events(value: Any) -> list[Event]:
    out = []
    for item in _l(value):
        ev = _d(item)
        name = _s(ev.get("name"))
        if not name:
            continue
        out.append(Event(name, _num(ev.get("t")), parse_utc(ev.get("at"))))
    out.sort(key=lambda e: (e.t is None, e.t or 0.0))
    return out


def _objectives(drpoc: dict[str, Any], metrics: dict[str, Any]) -> list[Objective]:
    results = _l(drpoc.get("objective_results"))
    out: list[Objective] = []
    seen = set()
    for item in results:
        res = _d(item)
        name = _s(res.get("name"))
        if not name:
            continue
        seen.add(name)
        out.append(Objective(name, res.get("objective"), res.get("achieved"), _bool(res.get("passed")), _unit(name)))
    # Objectives without a recorded result are listed, never judged here.
    for name, value in _d(drpoc.get("objectives")).items():
        if name in seen:
            continue
        achieved = metrics.get(name)
        if achieved is None and name.startswith("max_"):
            achieved = metrics.get(name[4:])
        out.append(Objective(name, value, achieved, None, _unit(name)))
    return out


def _scope(value: Any) -> Scope:
    sc = _d(value)
    gw = {str(k): str(v) for k, v in _d(sc.get("gateways")).items() if _s(v)}
    sn = {str(k): str(v) for k, v in _d(sc.get("subnets")).items() if _s(v)}
    return Scope(_s(sc.get("inventory")), _s(sc.get("inventory_path")), _s(sc.get("connection")),
                 _s(sc.get("fault_site")), gw, _s(sc.get("source")), _s(sc.get("replica")), sn)


def _pair(drpoc: dict[str, Any], warnings: list[str]) -> tuple[str, bool]:
    value = drpoc.get("pair")
    if isinstance(value, str) and value.strip():
        return value, True
    if value is not None and not isinstance(value, str):
        warnings.append(f"drpoc.pair is a {type(value).__name__}, not a string: the pair is taken from the scope")
    sc = _d(drpoc.get("scope"))
    site = sc.get("replica_site")
    if isinstance(site, str) and site.strip():
        return site, False
    replica = sc.get("replica")
    if isinstance(replica, str) and replica.split():
        return replica.split()[0], False
    return ONLY_PAIR, False


def _blast_radius(value: Any, warnings: list[str]) -> BlastRadius:
    if value is None:
        return BlastRadius()
    if not isinstance(value, dict):
        warnings.append(f"drpoc.blast_radius is a {type(value).__name__}, not an object: not read")
        return BlastRadius()
    bad: list[str] = []
    watched = tuple(str(v) for v in _l(value.get("watched")) if isinstance(v, str))
    if len(watched) != len(_l(value.get("watched"))) or not isinstance(value.get("watched", []), list):
        bad.append("watched")
    skipped = tuple((str(k), _s(v) or "") for k, v in _d(value.get("skipped")).items())
    if not isinstance(value.get("skipped", {}), dict):
        bad.append("skipped")
    raw_leaks = value.get("leaks", [])
    leaks = tuple(Leak(_s(_d(x).get("pair")), _num(_d(x).get("t")), _s(_d(x).get("what")))
                  for x in _l(raw_leaks) if isinstance(x, dict))
    if not isinstance(raw_leaks, list) or len(leaks) != len(_l(raw_leaks)):
        bad.append("leaks")
    ok = value.get("ok")
    if ok is not None and not isinstance(ok, bool):
        bad.append("ok")
    if bad:
        warnings.append(f"drpoc.blast_radius: {', '.join(bad)} of an unexpected type: read as far as possible")
    return BlastRadius(True, _bool(ok), watched, skipped, leaks)


def _writes(value: Any) -> Writes:
    w = value if isinstance(value, dict) else None
    if w is None:
        return Writes()
    return Writes(_int(w.get("attempted")), _int(w.get("acknowledged")), _int(w.get("observed")),
                  tuple(_l(w.get("lost"))), tuple(_l(w.get("unexpected"))), tuple(_l(w.get("duplicated"))), True)


def derive_issues(rec: DrillRecord) -> list[str]:
    """The facts an auditor must see as "issues found", in plain sentences."""
    issues: list[str] = []
    if rec.not_started:
        issues.append(f"the drill did not start ({rec.cause or 'cause not recorded'}"
                      + (f": {NOT_STARTED_CAUSES[rec.cause]}" if rec.cause in NOT_STARTED_CAUSES else "")
                      + "): nothing was touched; not counted as a drill failure")
    if rec.verdict == "died":
        died = rec.died or {}
        fired = rec.deadman_fired
        issues.append(f"the drill died: its orchestrator stopped during "
                      f"{repr(died.get('last_step')) if died.get('last_step') else 'an unknown step'}"
                      + (f" (found by {died.get('detected_by')})" if died.get("detected_by") else "")
                      + {True: "; the dead-man's switch fired", False: "; the dead-man's switch did not fire",
                         None: "; no record of the dead-man's switch"}[fired])
    # the verdict's reasons, then what the same rule finds again in the journal (core.verdict: one wording)
    issues.extend(rec.reasons)
    issues.extend(rec.rejudged)
    if not rec.is_drpoc:
        # a run without our control: only what Chaos Toolkit itself records
        if rec.chaos_status and rec.chaos_status != "completed":
            issues.append(f"the Chaos Toolkit run ended '{rec.chaos_status}'")
    if rec.chaos_status and rec.chaos_status != "completed" and not rec.rollbacks and rec.is_drpoc \
            and rec.verdict not in (NOT_STARTED, "died"):
        issues.append(f"the Chaos Toolkit run ended '{rec.chaos_status}': with the default strategy its rollbacks "
                      "did not run")
    for rb in rec.rollbacks:
        if rb.status and rb.status != "succeeded":
            issues.append(f"rollback '{rb.name}' {rb.status}" + (f": {rb.error}" if rb.error else ""))
    deadman = _d(rec.safety.get("deadman"))
    if deadman.get("fired") is True and rec.verdict != "died":
        issues.append("the dead-man's switch fired: the fault was reverted by the safety net")
    if rec.rollbacks_forced:
        issues.append("rollbacks were forced by the drill control")
    for leak in rec.blast_radius.leaks:
        at = f" at t={leak.t:g}s" if leak.t is not None else ""
        issues.append(f"blast radius: pair {leak.pair or 'n/a'} was hurt{at} while pair {rec.pair} was drilled"
                      + (f": {leak.what}" if leak.what else ""))
    if rec.is_drpoc and rec.verdict == "passed" and not any(o.passed is not None for o in rec.objectives):
        issues.append("the verdict says passed but no objective result is recorded: nothing to check it against")
    if rec.integrity not in ("verified",):
        issues.append(f"integrity: {rec.integrity}" + (f" ({rec.integrity_detail})" if rec.integrity_detail else "")
                      + ("" if rec.trusted else ": excluded from the pass rate and the trends"))
    # Drop exact duplicates (a verdict reason often restates an objective failure), keep order.
    return list(dict.fromkeys(issues))


# ------------------------------------------------------------------------------------------------ normalise
def _passed_word(passed: bool | None) -> str | None:
    return None if passed is None else ("passed" if passed else "failed")


def normalise_journal(journal: dict[str, Any], path: str, sha256: str = "") -> tuple[DrillRecord, list[Problem]]:
    """One journal dict → one record, plus the problems found in it (missing keys, unknown schema)."""
    problems: list[Problem] = []
    name = os.path.basename(path)
    from_name = parse_archive_name(name) or {}
    experiment = _d(journal.get("experiment"))
    raw_drpoc = journal.get("drpoc")
    schema = _s(_d(raw_drpoc).get("schema")) if raw_drpoc is not None else None
    warnings: list[str] = []
    is_drpoc = isinstance(raw_drpoc, dict) and schema == SCHEMA
    if raw_drpoc is not None and not isinstance(raw_drpoc, dict):
        problems.append(Problem(path, f"the drpoc key is a {type(raw_drpoc).__name__}, not an object: "
                                "DR facts not read", "schema"))
        warnings.append("drpoc key unreadable: DR facts not read")
    elif isinstance(raw_drpoc, dict) and schema != SCHEMA:
        problems.append(Problem(path, f"unknown drpoc schema {schema!r} (this review reads {SCHEMA!r}): "
                                "DR facts not interpreted; update drpoc-chaos to review it", "schema"))
        warnings.append(f"unknown drpoc schema {schema!r}: DR facts shown as n/a")
    drpoc = _d(raw_drpoc) if is_drpoc else {}

    status = _s(_d(drpoc.get("verdict")).get("status"))
    if is_drpoc:
        expected = EXPECTED_DRPOC_KEYS if status not in (NOT_STARTED, "died") else ("run_id", "scenario", "verdict")
        missing = [k for k in expected if k not in drpoc]
        if missing:
            problems.append(Problem(path, f"drpoc key lacks {', '.join(missing)}: shown as n/a", "missing-keys"))
        wrong = [f"{k} is a {type(drpoc[k]).__name__}, expected {'a list' if t is list else 'an object'}"
                 for k, t in EXPECTED_TYPES.items() if k in drpoc and drpoc[k] is not None
                 and not isinstance(drpoc[k], t)]
        if wrong:
            problems.append(Problem(path, f"drpoc key has unexpected types ({'; '.join(wrong)}): shown as n/a",
                                    "missing-keys"))
    else:
        missing = [k for k in ("experiment", "status", "start") if k not in journal]
        if missing:
            problems.append(Problem(path, f"journal lacks {', '.join(missing)}: shown as n/a", "missing-keys"))

    controller = _d(drpoc.get("controller"))
    metrics = dict(_d(drpoc.get("metrics")))
    timeline = _d(drpoc.get("timeline"))
    samples, dropped = _samples(timeline)
    if dropped:
        warnings.append(f"{dropped} timeline sample(s) without a time were ignored")
    verdict = _d(drpoc.get("verdict"))
    started = parse_utc(drpoc.get("started")) or parse_utc(journal.get("start"))
    ended = parse_utc(drpoc.get("ended")) or parse_utc(journal.get("end"))
    duration = _num(journal.get("duration"))
    if duration is None and started and ended:
        duration = (ended - started).total_seconds()
    title = _s(drpoc.get("title")) or _s(experiment.get("title")) or "(untitled experiment)"
    scenario = (_s(drpoc.get("scenario")) or from_name.get("scenario")
                or (slugify(title) if experiment.get("title") else "n/a"))
    run_id = _s(drpoc.get("run_id")) or from_name.get("run_id8") or Path(name).stem
    safety = _d(drpoc.get("safety"))
    reasons = [str(r) for r in _l(verdict.get("reasons")) if _s(r)]

    rec = DrillRecord(
        path=path, file=name, run_id=run_id, is_drpoc=is_drpoc, schema=schema, scenario=scenario, title=title,
        started=started, ended=ended, duration_seconds=duration,
        node=_s(controller.get("node")) or _s(journal.get("node")), user=_s(controller.get("user")),
        platform=_s(journal.get("platform")), chaoslib_version=_s(journal.get("chaoslib-version")),
        drpoc_version=_s(controller.get("drpoc_version")),
        scope=_scope(drpoc.get("scope")), objectives=_objectives(drpoc, metrics), metrics=metrics,
        verdict=_s(verdict.get("status")) or _passed_word(_bool(verdict.get("passed"))),
        passed=_bool(verdict.get("passed")), reasons=reasons,
        steady_before=_steady(_d(journal.get("steady_states")).get("before")),
        steady_after=_steady(_d(journal.get("steady_states")).get("after")),
        rollbacks=_rollbacks(journal.get("rollbacks")), rollbacks_forced=_bool(safety.get("rollbacks_forced")),
        writes=_writes(drpoc.get("writes")) if is_drpoc else Writes(),
        chaos_status=_s(journal.get("status")), deviated=_bool(journal.get("deviated")),
        interval_seconds=_num(timeline.get("interval_seconds")), timeline=samples,
        events=_events(drpoc.get("events")), safety=safety, sha256=sha256, warnings=warnings,
    )
    if is_drpoc:
        rec.pair, rec.pair_recorded = _pair(drpoc, warnings)
        rec.blast_radius = _blast_radius(drpoc.get("blast_radius"), warnings)
    if rec.verdict == NOT_STARTED:
        rec.passed = None  # never judged, whatever "passed" says
        rec.cause = _s(verdict.get("cause"))
    elif rec.verdict == "died":
        rec.passed = False
        rec.died = dict(_d(drpoc.get("died")))
    elif rec.passed is None and rec.verdict in JUDGED_STATUSES:
        rec.passed = rec.verdict == "passed"
    elif rec.verdict in JUDGED_STATUSES and rec.passed != (rec.verdict == "passed"):
        warnings.append(f"verdict status {rec.verdict!r} contradicts passed={rec.passed}: taken as not passed")
        rec.passed = False
    # judged again with the same rule and words (core.verdict); for a journal our control wrote, its reasons are
    # the recorded ones, so only what the recorded verdict missed is new
    if rec.verdict not in (NOT_STARTED, "died"):
        rec.rejudged = [r for r in judge(facts_from_journal(journal)).reasons if r not in rec.reasons]
        if rec.passed and rec.rejudged:
            warnings.append("the verdict says passed but the journal's own content does not: taken as not passed")
            rec.passed = False
    return rec, problems


# ------------------------------------------------------------------------------------------------ loading
_GLOB_CHARS = re.compile(r"[*?\[]")


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Problem]]:
    """Files, directories (every ``*.json`` at the top, the ledger and dot-files excluded) and globs → files."""
    files: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    for raw in paths:
        text = os.fspath(raw)
        p = Path(text)
        if p.is_dir():
            # intents (written before each fault) are the ledger's business, not drills to review
            found = sorted(c for c in p.iterdir() if c.suffix == ".json" and c.is_file() and not c.name.startswith(".")
                           and not c.name.endswith(INTENT_SUFFIX))
            if not found:
                problems.append(Problem(text, "empty archive: no journal (*.json) in this directory", "empty"))
            for c in found:
                add(c)
        elif p.is_file():
            add(p)
        elif _GLOB_CHARS.search(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            matches = [m for m in matches if m.is_file() and m.name != LEDGER_NAME and not m.name.startswith(".")
                       and not m.name.endswith(INTENT_SUFFIX)]
            if not matches:
                problems.append(Problem(text, "no file matches this pattern", "input"))
            for m in matches:
                add(m)
        else:
            problems.append(Problem(text, "no such file or directory", "input"))
    return files, problems


def _parse_error(data: bytes, exc: json.JSONDecodeError) -> str:
    stripped = data.rstrip()
    at_end = exc.pos >= len(stripped) - 1
    unterminated = exc.msg.startswith("Unterminated") or exc.msg.startswith("Expecting")
    if at_end or (unterminated and exc.pos >= len(stripped) - 64):
        return (f"truncated JSON: the file ends at line {exc.lineno} column {exc.colno} "
                f"({len(data)} bytes) in the middle of the document; the run was cut short or the copy is incomplete")
    return f"corrupt JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


def _read_one(path: Path) -> tuple[dict[str, Any] | None, str, Problem | None]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, "", Problem(str(path), f"cannot read: {exc.strerror or exc}", "input")
    digest = hashlib.sha256(data).hexdigest()
    if not data.strip():
        return None, digest, Problem(str(path), "empty file (0 bytes of JSON)", "input")
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, digest, Problem(str(path), f"corrupt: not UTF-8 text (byte {exc.start})", "input")
    except json.JSONDecodeError as exc:
        return None, digest, Problem(str(path), _parse_error(data, exc), "input")
    except RecursionError:
        return None, digest, Problem(str(path), "corrupt JSON: nested too deeply", "input")
    if not isinstance(obj, dict):
        return None, digest, Problem(str(path), f"not a Chaos Toolkit journal: the top level is a "
                                     f"{type(obj).__name__}, not an object", "input")
    if not any(k in obj for k in ("experiment", "status", "drpoc", "steady_states", "run")):
        return None, digest, Problem(str(path), "not a Chaos Toolkit journal: none of experiment, status, run, "
                                     "steady_states or drpoc is present", "input")
    return obj, digest, None


def _integrity_problems(report: VerifyReport) -> list[Problem]:
    return [Problem(f"{report.archive_dir}/{f.subject}" if not f.subject.startswith(report.archive_dir) else f.subject,
                    f.message, "integrity") for f in report.findings]


def _names_file(f: Finding, name: str) -> bool:
    """True when an integrity finding is about the archived file ``name`` (its ledger line or the file itself)."""
    subject = f.subject or ""
    return f.file == name or subject == name or subject.endswith("/" + name)


def _apply_integrity(rec: DrillRecord, report: VerifyReport, name: str, archive: Path) -> None:
    """Set the record's integrity from its archive's VerifyReport. Findings are consumed generically: any finding
    naming the file makes it untrusted; any finding of the archive keeps the others from showing "verified"."""
    status = report.file_status.get(name, "not in ledger")
    mine = [f for f in report.findings if _names_file(f, name)]
    rec.integrity_findings = [f"[{f.kind}] {f.message}" for f in mine]
    rec.archive_findings = len(report.findings)
    if status == "verified" and any(f.kind.startswith("signature") for f in mine):
        status = "bad signature"
    elif status == "verified" and mine:
        status = "unverifiable"  # the file's own hash matches, but its ledger entry has a finding
    if status == "verified":
        detail = "sha256 matches the hash-chained ledger"
        if report.signatures_checked:
            detail += f"; signature valid (key {report.key_id})"
        if report.findings:
            status = "unconfirmed"
            detail += (f"; but the archive {archive} has {len(report.findings)} integrity finding(s) (see the "
                       "header): the ledger cannot vouch that nothing was deleted, inserted or rewritten")
        rec.integrity, rec.integrity_detail = status, detail
    else:
        rec.integrity = status
        rec.integrity_detail = "; ".join(rec.integrity_findings) or f"{status} (archive {archive})"


def load_journals(paths: Iterable[str | os.PathLike[str]], public_key: Any = None,
                  secrets: Iterable[str] = ()) -> tuple[list[DrillRecord], list[Problem]]:
    """Load every journal found in ``paths`` (files, archive directories, globs).

    Every journal is redacted first (``redact`` with ``secrets``, the known secret values, and whatever the
    journal itself holds under secret-looking keys), archived or not, so nothing rendered from a record can leak.
    Returns the records sorted by start time and the problems met. A journal inside a directory holding a
    ``ledger.jsonl`` gets its integrity from ``verify_archive`` (with ``public_key`` when given); every finding of
    that archive is also listed as a problem of kind "integrity". Raises LedgerError only for an unusable
    ``public_key``."""
    secrets = [str(s) for s in secrets if s]
    if public_key is not None:
        public_key = load_public_key(public_key)  # an unusable key is the caller's error: LedgerError
    paths = [os.fspath(p) for p in paths]
    files, problems = expand_inputs(paths)
    records: list[DrillRecord] = []
    reports: dict[Path, VerifyReport | None] = {}

    def report_for(directory: Path) -> VerifyReport | None:
        archive = directory.resolve()
        if archive not in reports:
            report = None
            if (archive / LEDGER_NAME).exists():
                try:
                    report = verify_archive(directory, public_key)
                except OSError as exc:  # e.g. the ledger is unreadable: say so, go on
                    problems.append(Problem(str(directory), f"cannot verify the archive: {exc}", "integrity"))
                else:
                    problems.extend(_integrity_problems(report))
            reports[archive] = report
        return reports[archive]

    # An archive given as input is verified even when none of its journals is left to read (all deleted).
    for raw in paths:
        if Path(raw).is_dir():
            report_for(Path(raw))
    for path in files:
        if path.name == LEDGER_NAME:
            continue
        journal, digest, problem = _read_one(path)
        if problem:
            problems.append(problem)
        if journal is None:
            continue
        try:
            journal = redact(journal, secrets)
            rec, found = normalise_journal(journal, str(path), digest)
        except Exception as exc:  # noqa: BLE001 - one odd journal must never stop the review of the others
            problems.append(Problem(str(path), f"could not interpret this journal ({type(exc).__name__}: {exc})",
                                    "input"))
            continue
        problems.extend(found)
        report = report_for(path.parent)
        if report is None:
            rec.integrity = "no ledger"
            rec.integrity_detail = "the file is not in an archive with a ledger.jsonl"
        else:
            _apply_integrity(rec, report, path.name, path.parent)
        rec.issues = derive_issues(rec)
        records.append(rec)
    # A problem's message may quote the journal (an exception text): scrubbed like the journals.
    problems = [Problem(p.source, redact(p.message, secrets), p.kind) for p in problems]
    records.sort(key=lambda r: (r.started is None, r.started.timestamp() if r.started else 0.0, r.file))
    return records, problems
