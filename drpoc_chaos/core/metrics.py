"""DR metrics and the drill's verdict, from the timeline, the events and the write ledger. Pure: no I/O.

Jepsen's set arithmetic for writes: lost = acknowledged - observed, unexpected = observed - attempted, duplicated =
written once but seen more than once. Times are seconds since the drill started (the timeline's `t`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from .model import SCHEMA  # noqa: F401 — re-exported: the journal schema the metrics belong to
from .verdict import Facts, judge

# objective name -> (metric path in the metrics dict, human label); objectives are upper bounds
OBJECTIVES = {
    "rpo_seconds": (("rpo_exposure", "max_seconds"), "RPO: data not yet on the replica (s)"),
    "rto_seconds": (("rto_seconds",), "RTO: recovery start to replica caught up (s)"),
    "detection_seconds": (("detection_seconds",), "outage detected by the replica within (s)"),
    "tunnel_recovery_seconds": (("tunnel_recovery_seconds",), "tunnel re-established within (s)"),
    "catch_up_seconds": (("catch_up_seconds",), "replica caught up after reconnecting within (s)"),
    "max_lost_writes": (("lost_writes",), "acknowledged writes lost"),
    # the site failover drill (core.failover)
    "failover_rto_seconds": (("failover", "rto_seconds"), "RTO: site lost to first write on the new primary (s)"),
    "failover_rpo_seconds": (("failover", "rpo_seconds"), "RPO: oldest lost acknowledged write before the loss (s)"),
    "switchover_window_seconds": (("failover", "switchover_window_seconds"),
                                  "switchover back: writes unavailable for (s)"),
}


@dataclass
class WriteRecord:
    """One write the drill attempted on the source. `acked_t` is None when the commit was not acknowledged."""

    msg: str
    phase: str
    attempted_t: float
    id: int | None = None
    acked_t: float | None = None
    error: str | None = None
    gtid: str | None = None
    visible_t: float | None = None  # when a direct check saw it on the replica (more precise than the timeline)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Event:
    name: str
    t: float
    at: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "t": round(self.t, 3), "at": self.at}
        if self.detail:
            d["detail"] = self.detail
        return d


def first_event(events: Iterable[Mapping[str, Any]], name: str) -> float | None:
    for e in events:
        if e["name"] == name:
            t: float | None = e["t"]
            return t
    return None


def _diff(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return round(a - b, 3)


def quantiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}
    s = sorted(values)

    def q(p: float) -> float:
        # nearest-rank: honest for small samples (no interpolation between writes)
        k = max(0, min(len(s) - 1, math.ceil(p * len(s) - 1e-9) - 1))
        return round(s[k], 3)

    return {"p50": q(0.50), "p95": q(0.95), "p99": q(0.99), "max": round(s[-1], 3), "count": len(s)}


def write_sets(writes: list[WriteRecord], observed: list[tuple[int, str]], run_tag: str) -> dict[str, Any]:
    """Compare the ledger with what the replica holds. `observed` are (id, msg) rows on the replica whose msg carries
    this run's tag; a msg is unique per attempted write."""
    attempted = {w.msg for w in writes}
    acked = {w.msg for w in writes if w.acked_t is not None}
    seen_count: dict[str, int] = {}
    for _, msg in observed:
        seen_count[msg] = seen_count.get(msg, 0) + 1
    seen = set(seen_count)
    return {
        "attempted": len(attempted),
        "acknowledged": len(acked),
        "observed": len(seen & attempted),
        "lost": sorted(acked - seen),
        "unexpected": sorted(m for m in seen - attempted if run_tag in m),
        "duplicated": sorted(m for m, n in seen_count.items() if n > 1),
        "indeterminate": sorted((attempted - acked) & seen),  # not acknowledged, yet applied: allowed
    }


def latencies(writes: list[WriteRecord], samples: list[dict[str, Any]]) -> list[float]:
    """Per acknowledged write: acknowledgement -> first moment it was seen on the replica. A direct observation
    (visible_t) wins; otherwise the first timeline sample whose replica max id covers the write's id."""
    out: list[float] = []
    pts: list[tuple[float, int]] = [(s["t"], max_id) for s in samples
                                    if (max_id := s.get("replica_max_id")) is not None]
    for w in writes:
        if w.acked_t is None or w.id is None:
            continue
        if w.visible_t is not None:
            out.append(max(0.0, w.visible_t - w.acked_t))
            continue
        for t, max_id in pts:
            if t >= w.acked_t and max_id >= w.id:
                out.append(t - w.acked_t)
                break
    return out


def compute_metrics(samples: list[dict[str, Any]], events: list[dict[str, Any]], writes: list[WriteRecord],
                    sets: dict[str, Any] | None, seen_msgs: set[str] | None = None) -> dict[str, Any]:
    fault = first_event(events, "fault_injected")
    detected = first_event(events, "outage_detected")
    recovery = first_event(events, "recovery_started")
    tunnel_up = first_event(events, "tunnel_up")
    reconnected = first_event(events, "io_reconnected")
    caught_up = first_event(events, "caught_up")

    # "during the outage" is by time, whatever phase label a write carries: from the fault to the tunnel's return
    end = tunnel_up if tunnel_up is not None else float("inf")
    during = [w for w in writes if fault is not None and fault <= w.attempted_t < end]
    rows_gap = [s["source_rows"] - s["replica_rows"] for s in samples
                if s.get("source_rows") is not None and s.get("replica_rows") is not None]
    lags = [s["heartbeat_lag"] for s in samples if s.get("heartbeat_lag") is not None]
    catch_up = _diff(caught_up, reconnected)
    apply_rate = None
    if caught_up is not None and reconnected is not None:
        # rows the replica applied per second while catching up: from the last sample before it reconnected to
        # the first sample after it caught up
        before = [s for s in samples if s["t"] <= reconnected and s.get("replica_rows") is not None]
        after = [s for s in samples if s["t"] >= caught_up and s.get("replica_rows") is not None]
        if before and after and after[0]["t"] > before[-1]["t"]:
            applied = after[0]["replica_rows"] - before[-1]["replica_rows"]
            apply_rate = round(applied / (after[0]["t"] - before[-1]["t"]), 1)
    lat = latencies(writes, samples)
    return {
        "detection_seconds": _diff(detected, fault),
        "outage_seconds": _diff(tunnel_up, fault),
        "tunnel_recovery_seconds": _diff(tunnel_up, recovery),
        "replica_reconnect_seconds": _diff(reconnected, tunnel_up),
        "catch_up_seconds": catch_up,
        "rto_seconds": _diff(caught_up, recovery),  # recovery started -> replica caught up
        "writes_during_outage": {
            "attempted": len(during),
            "acknowledged": sum(1 for w in during if w.acked_t is not None),
            "observed": sum(1 for w in during if w.msg in seen_msgs) if seen_msgs is not None else None,
        },
        "lost_writes": len(sets["lost"]) if sets else None,
        "unexpected_writes": len(sets["unexpected"]) if sets else None,
        "duplicated_writes": len(sets["duplicated"]) if sets else None,
        "replication_latency_seconds": quantiles(lat),
        "rpo_exposure": {"max_writes": max(rows_gap) if rows_gap else None,
                         "max_seconds": round(max(lags), 3) if lags else None},
        "apply_rate_per_second": apply_rate,
    }


def _metric(metrics: dict[str, Any], path: tuple[str, ...]) -> Any:
    v: Any = metrics
    for k in path:
        if not isinstance(v, dict):
            return None
        v = v.get(k)
    return v


def evaluate_objectives(metrics: dict[str, Any], objectives: Mapping[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for name, objective in objectives.items():
        if name not in OBJECTIVES or objective is None:
            continue
        path, label = OBJECTIVES[name]
        achieved = _metric(metrics, path)
        passed = achieved is not None and achieved <= objective
        results.append({"name": name, "label": label, "objective": objective, "achieved": achieved,
                        "passed": passed})
    return results


def verdict(journal: Mapping[str, Any], *, fault_injected: bool, expect_outage: bool, outage_detected: bool,
            objective_results: Iterable[Mapping[str, Any]], sets: Mapping[str, Any] | None, max_lost_writes: int = 0,
            extra_reasons: Iterable[str] = (), not_started: tuple[str, str | None] | None = None,
            split_brain: Iterable[float] = ()) -> dict[str, Any]:
    """The drill control's verdict from what it saw (core.verdict.judge holds the rule and its wording).

    `not_started` = (cause, reason) when the drill never got going (locked, no inventory, host unreachable,
    authentication, bad input, infeasible settings): nothing was injected, and that is not a drill failure —
    the review counts it apart."""
    steady = journal.get("steady_states") or {}
    facts = Facts(chaos_status=journal.get("status"), steady_before=steady.get("before"),
                  steady_after=steady.get("after"), deviated=bool(journal.get("deviated")),
                  runs=list(journal.get("run", [])), fault_injected=fault_injected, expect_outage=expect_outage,
                  outage_detected=outage_detected,
                  lost=sets["lost"] if sets is not None else None,
                  unexpected=sets["unexpected"] if sets is not None else None,
                  duplicated=sets["duplicated"] if sets is not None else None,
                  max_lost_writes=max_lost_writes, objective_results=list(objective_results),
                  extra_reasons=list(extra_reasons), not_started=not_started, split_brain=list(split_brain))
    return judge(facts).to_dict()
