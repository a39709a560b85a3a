"""The fleet view: one row per replication pair (inventory, pair), and campaigns linked to the drills they ran.

Pure: computed from the records the review already loaded (``load_journals``) and the campaigns it read
(``campaigns.load_campaigns``). Each pair's figures come from ``history.build_history`` run on that pair's drills
alone, with the review's schedule and clock: the same rules for what counts (a journal that cannot be trusted is
left out, a drill that did not start is counted apart), the same trend points, the same overdue test (a scheduled
scenario is overdue on a pair when the pair's last *passing* drill of it is older than its interval, or when it never
passed there). Generic Chaos Toolkit journals (no ``drpoc`` key) drilled no pair and are not in the fleet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Iterable, Sequence

from ..core import fmt
from .campaigns import NOT_RUN_HALTED, Campaign, CampaignOutcome
from .history import History, ScenarioHistory, build_history
from .model import DrillRecord

__all__ = ["TREND_LENGTH", "PairRow", "CampaignRow", "CampaignView", "Fleet", "build_fleet", "fleet_json",
           "campaigns_json", "trend_text"]

TREND_LENGTH = 8  # values per trend in a fleet row: the most recent drills of the pair


@dataclass
class PairRow:
    inventory: str | None
    pair: str
    pair_recorded: bool  # False: the journals name no pair (older drills); named after the scope's replica
    history: History  # this pair's drills only
    last: DrillRecord | None  # the most recent trusted drill of the pair (a drill that did not start included)
    rto_trend: list[float | None] = field(default_factory=list)  # metrics.rto_seconds, oldest first
    rpo_trend: list[float | None] = field(default_factory=list)  # DrillRecord.rpo_seconds, oldest first
    leaks: int = 0  # blast-radius leaks recorded by this pair's drills (other pairs hurt)
    leak_drills: int = 0  # this pair's drills that recorded at least one leak
    leaks_suffered: int = 0  # leaks naming this pair, recorded by drills of other pairs of the same inventory

    @property
    def key(self) -> tuple[str, str]:
        return (self.inventory or "", self.pair)

    @property
    def passed(self) -> int:
        return self.history.passed

    @property
    def judged(self) -> int:
        return self.history.judged

    @property
    def scheduled(self) -> list[ScenarioHistory]:
        return [s for s in self.history.scenarios if s.interval_days is not None]

    @property
    def overdue(self) -> list[ScenarioHistory]:
        return self.history.overdue

    @property
    def schedule_status(self) -> str:
        if not self.scheduled:
            return "no schedule"
        if self.overdue:
            return "; ".join(f"{s.scenario} {s.schedule_status}" for s in self.overdue)
        return "on schedule"


@dataclass
class CampaignRow:
    outcome: CampaignOutcome
    record: DrillRecord | None  # the drill's journal in this review, when found (by run id, else file name)
    notes: list[str] = field(default_factory=list)  # where the campaign file and the journal disagree


@dataclass
class CampaignView:
    campaign: Campaign
    rows: list[CampaignRow]
    notes: list[str] = field(default_factory=list)


@dataclass
class Fleet:
    pairs: list[PairRow]
    campaigns: list[CampaignView]
    campaign_files: int = 0  # campaign files found, readable or not

    @property
    def shown(self) -> bool:
        """The review shows the Fleet and Campaigns sections only when the drills span more than one pair (and at
        least one journal names its pair: journals that name none come from single-pair inventories, so an older
        archive, even one mixing inventories or holding a journal without a scope, stays as it was) or a campaign
        file was found."""
        return self.campaign_files > 0 or (len(self.pairs) > 1 and any(p.pair_recorded for p in self.pairs))


def _ts(rec: DrillRecord) -> float:
    return rec.started.timestamp() if rec.started else float("-inf")


def _pair_row(inventory: str | None, pair: str, recs: list[DrillRecord], history: History) -> PairRow:
    own = build_history(recs, history.schedule, history.generated_at)
    trusted = [r for r in recs if r.trusted]
    last = max(trusted, key=_ts) if trusted else None
    points = sorted((p for s in own.scenarios for p in s.trend), key=lambda p: p.started)[-TREND_LENGTH:]
    leaky = [r for r in trusted if r.blast_radius.leaks]
    return PairRow(inventory, pair, any(r.pair_recorded for r in recs), own, last,
                   rto_trend=[p.values.get("rto_seconds") for p in points],
                   rpo_trend=[p.rpo_seconds for p in points],
                   leaks=sum(len(r.blast_radius.leaks) for r in leaky), leak_drills=len(leaky))


def _find(outcome: CampaignOutcome, records: Sequence[DrillRecord]) -> DrillRecord | None:
    if outcome.run_id:
        exact = [r for r in records if r.run_id == outcome.run_id]
        if exact:
            return exact[0]
        if len(outcome.run_id) >= 8:
            prefix = [r for r in records if r.run_id.startswith(outcome.run_id)
                      or (len(r.run_id) >= 8 and outcome.run_id.startswith(r.run_id))]
            if len(prefix) == 1:
                return prefix[0]
    if outcome.journal:
        named = [r for r in records if r.file == outcome.journal]
        if len(named) == 1:
            return named[0]
    return None


def _link(campaign: Campaign, records: Sequence[DrillRecord]) -> CampaignView:
    rows = []
    for o in campaign.outcomes:
        rec = _find(o, records)
        notes = []
        if rec is None:
            if o.ran:
                notes.append("its journal is not in this review" if o.run_id or o.journal
                             else "the campaign file names no run id or journal for it")
        else:
            if o.state == NOT_RUN_HALTED:
                notes.append(f"marked not run, yet its journal is here ({rec.verdict_label})")
            elif o.ran and (o.state == "passed") != (rec.passed is True):
                notes.append(f"the journal's verdict is {rec.verdict_label}")
            if rec.pair_recorded and o.pair is not None and rec.pair != o.pair:
                notes.append(f"the journal names pair {rec.pair}")
            if campaign.scenario and rec.scenario != PurePath(campaign.scenario).stem:
                notes.append(f"the journal's scenario is {rec.scenario}")
            if not rec.trusted:
                notes.append(f"the journal cannot be trusted (integrity: {rec.integrity})")
        rows.append(CampaignRow(o, rec, notes))
    notes = []
    with_outcome = {o.pair for o in campaign.outcomes}
    missing = [p for p in campaign.chosen if p not in with_outcome]
    if missing:
        notes.append(f"chosen but without an outcome: {', '.join(missing)}")
    if campaign.halted and not any(o.state == NOT_RUN_HALTED for o in campaign.outcomes) and missing:
        notes.append("halted: the pairs without an outcome did not run")
    return CampaignView(campaign, rows, notes)


def build_fleet(records: Iterable[DrillRecord], history: History, campaigns: Iterable[Campaign] = (),
                campaign_files: int | None = None) -> Fleet:
    """One ``PairRow`` per (inventory, pair) of the drpoc drills in ``records`` (sorted by inventory, then pair),
    judged with ``history``'s schedule and clock; each campaign with its outcomes linked to their drills."""
    records = [r for r in records if r.is_drpoc]
    campaigns = list(campaigns)
    groups: dict[tuple[str | None, str], list[DrillRecord]] = {}
    for rec in records:
        groups.setdefault((rec.inventory, rec.pair), []).append(rec)
    rows = [_pair_row(inv, pair, recs, history) for (inv, pair), recs in groups.items()]
    by_key = {row.key: row for row in rows}
    for rec in records:
        if not rec.trusted:
            continue
        for leak in rec.blast_radius.leaks:
            row = by_key.get((rec.inventory or "", leak.pair or ""))
            if row is not None and leak.pair != rec.pair:
                row.leaks_suffered += 1
    rows.sort(key=lambda r: r.key)
    views = [_link(c, records) for c in campaigns]
    return Fleet(rows, views, len(campaigns) if campaign_files is None else campaign_files)


# ------------------------------------------------------------------------------------------------ JSON
def _iso(when: Any) -> str | None:
    return when.isoformat() if when is not None else None


def fleet_json(fleet: Fleet) -> dict[str, Any]:
    """``drpoc review --json`` key ``fleet``: ``{shown, pairs: [...]}`` (docs/EVIDENCE.md)."""
    return {"shown": fleet.shown, "pairs": [{
        "inventory": row.inventory, "pair": row.pair, "pair_recorded": row.pair_recorded,
        "drills": row.history.drills, "judged": row.judged, "passed": row.passed,
        "not_started": len(row.history.not_started), "excluded": len(row.history.excluded),
        "last": None if row.last is None else {
            "started": _iso(row.last.started), "scenario": row.last.scenario, "run_id": row.last.run_id,
            "verdict": row.last.verdict, "passed": row.last.passed, "file": row.last.file},
        "rto_trend": row.rto_trend, "rpo_trend": row.rpo_trend,
        "leaks": row.leaks, "leak_drills": row.leak_drills, "leaks_suffered": row.leaks_suffered,
        "overdue": bool(row.overdue), "schedule_status": row.schedule_status,
        "schedule": [{"scenario": s.scenario, "interval_days": s.interval_days, "status": s.schedule_status,
                      "last_pass": _iso(s.last_pass.started) if s.last_pass else None, "due": _iso(s.due)}
                     for s in row.scheduled],
    } for row in fleet.pairs]}


def campaigns_json(fleet: Fleet) -> list[dict[str, Any]]:
    """``drpoc review --json`` key ``campaigns``: one object per readable campaign file, oldest first."""
    out = []
    for view in fleet.campaigns:
        c = view.campaign
        out.append({
            "file": c.path, "campaign_id": c.campaign_id, "flow_run_id": c.flow_run_id, "scenario": c.scenario,
            "inventory": c.inventory, "selection": c.selection, "max_parallel": c.max_parallel,
            "started": _iso(c.started), "finished": _iso(c.finished), "halted": c.halted,
            "halt_reason": c.halt_reason, "chosen": list(c.chosen), "counts": c.counts,
            "problems": list(c.problems), "notes": list(view.notes),
            "outcomes": [{
                "pair": r.outcome.pair, "order": r.outcome.order, "state": r.outcome.state,
                "run_id": r.outcome.run_id, "journal": r.outcome.journal, "work_pool": r.outcome.work_pool,
                "flow_run_id": r.outcome.flow_run_id, "started": _iso(r.outcome.started),
                "finished": _iso(r.outcome.finished), "reasons": list(r.outcome.reasons),
                "drill": None if r.record is None else {"run_id": r.record.run_id, "file": r.record.file,
                                                        "verdict": r.record.verdict, "passed": r.record.passed},
                "notes": list(r.notes)} for r in view.rows],
        })
    return out


def trend_text(values: Sequence[float | None]) -> str:
    """``[12.8, None, 9.1]`` → ``"12.8s → n/a → 9.1s"`` (oldest first); ``"n/a"`` when empty."""
    return " → ".join(fmt.seconds(v) for v in values) if values else fmt.NA
