"""A site failover's figures from the writer's own ledger (pure): RTO — the fault to the first write acknowledged by
the new primary — and RPO counted, not estimated — the acknowledged writes of the old primary that the new one does
not hold (how many, which, and how long before the fault the oldest was acknowledged) — and whether the old
primary's errant transactions account for them.

Every write carries the server it went to in its phase: `old:<phase>` before the writer moved, `new:<phase>` after.
Async replication may lose the newest acknowledged writes when the site dies: the drill reports them honestly and
`max_lost_writes` decides the verdict.
"""
from __future__ import annotations

from typing import Any, Iterable

from .metrics import WriteRecord

OLD, NEW = "old:", "new:"


def on_old(w: WriteRecord) -> bool:
    return w.phase.startswith(OLD)


def on_new(w: WriteRecord) -> bool:
    return w.phase.startswith(NEW)


def figures(writes: Iterable[WriteRecord], on_new_primary: set[str], *, fault_t: float,
            errant: int | None = None) -> dict[str, Any]:
    """`on_new_primary`: the msgs of this run's writes the new primary holds. Returns rto_seconds (None when no
    write was acknowledged by the new primary), lost (msgs, in write order), lost_count, rpo_seconds (fault →
    the oldest lost write's acknowledgement, 0 when none is lost), and, given the old primary's errant transaction
    count, whether they account for every lost write (each drill write is one transaction; errant ones that were
    never acknowledged are the indeterminate writes)."""
    writes = list(writes)
    first_new = min((w.acked_t for w in writes if on_new(w) and w.acked_t is not None), default=None)
    lost = [w for w in writes if on_old(w) and w.acked_t is not None and w.msg not in on_new_primary]
    out: dict[str, Any] = {
        "rto_seconds": None if first_new is None else round(max(0.0, first_new - fault_t), 3),
        "lost": [w.msg for w in lost],
        "lost_count": len(lost),
        "rpo_seconds": round(max(0.0, fault_t - min(w.acked_t for w in lost if w.acked_t is not None)), 3)
        if lost else 0.0,
        "acknowledged_old": sum(1 for w in writes if on_old(w) and w.acked_t is not None),
        "acknowledged_new": sum(1 for w in writes if on_new(w) and w.acked_t is not None),
    }
    if errant is not None:
        out["errant"] = errant
        out["errant_cover_lost"] = errant >= len(lost)
    return out
