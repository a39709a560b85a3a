"""The journal's `drpoc` key as one typed record (docs/JOURNAL.md): written by the drill control (and for a drill that
died, by drill/died.py), read by the scheduler and the evidence reader. Pure.

Reading is tolerant — a journal is evidence, possibly old, hand-edited or damaged: a field of the wrong type reads
as missing (None / empty) and is listed in `problems`, never raised. Keys this version does not know are kept in
`extra` and written back unchanged.

Made for what comes next: `pair` names the replication pair a drill ran on (None: the inventory's only pair),
`roles` the sites in each role when the drill started and ended (a failover drill swaps source and replica), and
`blast_radius` what the drill saw on the inventory's other pairs while it held its fault (a leak: another pair hurt).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .verdict import Verdict

__all__ = ["SCHEMA", "DrillResult"]

SCHEMA = "drpoc.journal/1"

_DICTS = ("controller", "scope", "objectives", "settings", "timeline", "writes", "metrics", "safety", "feasibility",
          "died", "roles", "blast_radius")
_LISTS = ("events", "objective_results", "earlier_drills_died", "parity")
_STRS = ("schema", "run_id", "scenario", "title", "started", "ended", "closed_at", "intent", "archived_as", "pair")


@dataclass
class DrillResult:
    run_id: str | None = None
    scenario: str | None = None
    verdict: Verdict | None = None
    schema: str | None = SCHEMA
    title: str | None = None
    controller: dict[str, Any] = field(default_factory=dict)
    started: str | None = None
    ended: str | None = None
    closed_at: str | None = None  # a died drill: when its outcome was archived
    scope: dict[str, Any] = field(default_factory=dict)
    pair: str | None = None
    roles: dict[str, Any] = field(default_factory=dict)
    objectives: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    timeline: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    writes: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    objective_results: list[dict[str, Any]] = field(default_factory=list)
    safety: dict[str, Any] = field(default_factory=dict)
    feasibility: dict[str, Any] = field(default_factory=dict)
    intent: str | None = None
    earlier_drills_died: list[dict[str, Any]] = field(default_factory=list)
    died: dict[str, Any] = field(default_factory=dict)
    parity: list[dict[str, Any]] = field(default_factory=list)  # data-parity checks: verdict per table
    # the other pairs watched while this one was drilled: {"ok", "watched", "skipped", "leaks": [{pair, t, what}]}
    blast_radius: dict[str, Any] = field(default_factory=dict)
    archived_as: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    # --- reading ---------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DrillResult":
        out = cls(schema=None)
        known = {f.name for f in fields(cls)} - {"extra", "problems"}
        for key, value in data.items():
            if key not in known:
                out.extra[key] = value
                continue
            if key == "verdict":
                out.verdict = Verdict.from_dict(value)
                if value is not None and out.verdict is None:
                    out.problems.append("verdict is not an object")
            elif key in _DICTS:
                if isinstance(value, Mapping):
                    setattr(out, key, dict(value))
                elif value is not None:
                    out.problems.append(f"{key} is not an object")
            elif key in _LISTS:
                if isinstance(value, list):
                    setattr(out, key, [dict(v) for v in value if isinstance(v, Mapping)])
                    if len(getattr(out, key)) != len(value):
                        out.problems.append(f"{key} holds entries that are not objects")
                elif value is not None:
                    out.problems.append(f"{key} is not a list")
            elif key in _STRS:
                if isinstance(value, str):
                    setattr(out, key, value)
                elif value is not None:
                    out.problems.append(f"{key} is not a string")
        return out

    @classmethod
    def from_journal(cls, journal: Mapping[str, Any] | None) -> "DrillResult | None":
        """The journal's `drpoc` key, or None when there is none (a run without our control)."""
        if not isinstance(journal, Mapping) or not isinstance(journal.get("drpoc"), Mapping):
            return None
        return cls.from_dict(journal["drpoc"])

    # --- writing ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The `drpoc` key. Optional parts are left out when empty, so a journal says only what happened."""
        out: dict[str, Any] = {"schema": self.schema, "run_id": self.run_id, "scenario": self.scenario,
                               "title": self.title, "controller": self.controller, "started": self.started,
                               "ended": self.ended, "scope": self.scope or None, "objectives": self.objectives,
                               "settings": self.settings, "timeline": self.timeline, "events": self.events,
                               "writes": self.writes, "metrics": self.metrics,
                               "objective_results": self.objective_results,
                               "verdict": self.verdict.to_dict() if self.verdict else None, "safety": self.safety}
        optional = {"closed_at": self.closed_at, "pair": self.pair, "roles": self.roles,
                    "feasibility": self.feasibility, "intent": self.intent,
                    "earlier_drills_died": self.earlier_drills_died, "died": self.died,
                    "parity": self.parity, "blast_radius": self.blast_radius, "archived_as": self.archived_as}
        if self.intent is not None:  # a drill that ran says what it found, even when it found nothing
            optional["earlier_drills_died"] = self.earlier_drills_died
        out.update({k: v for k, v in optional.items()
                    if v not in (None, {}) and not (k != "earlier_drills_died" and v == [])})
        out.update(self.extra)
        return out

    # --- what readers ask ------------------------------------------------------------------------------------
    @property
    def status(self) -> str | None:
        return self.verdict.status if self.verdict else None

    @property
    def passed(self) -> bool:
        return bool(self.verdict and self.verdict.passed)

    def event_names(self) -> set[str]:
        return {str(e.get("name")) for e in self.events}
