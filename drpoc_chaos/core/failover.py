"""A site failover's figures from the writer's own ledger (pure): RTO — the fault to the first write acknowledged by
the new primary — and RPO counted, not estimated — the acknowledged writes of the old primary that the new one does
not hold (how many, which, and how long before the fault the oldest was acknowledged) — and whether the old
primary's errant transactions account for them.

Every write carries the server it went to in its phase: `old:<phase>` before the writer moved, `new:<phase>` on the
promoted replica, `back:<phase>` on the old primary once the switchover returned it the writes.
Async replication may lose the newest acknowledged writes when the site dies: the drill reports them honestly and
`max_lost_writes` decides the verdict.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .metrics import WriteRecord

OLD, NEW, BACK = "old:", "new:", "back:"
LABELS = ("old", "new", "back")


def on_old(w: WriteRecord) -> bool:
    return w.phase.startswith(OLD)


def on_new(w: WriteRecord) -> bool:
    return w.phase.startswith(NEW)


def on_back(w: WriteRecord) -> bool:
    return w.phase.startswith(BACK)


def switchover_window(writes: Iterable[WriteRecord]) -> float | None:
    """The planned switchover's write-unavailability: the last write the promoted replica acknowledged to the first
    the old primary acknowledged once it had the writes back (None when either side has none)."""
    writes = list(writes)
    last_new = max((w.acked_t for w in writes if on_new(w) and w.acked_t is not None), default=None)
    first_back = min((w.acked_t for w in writes if on_back(w) and w.acked_t is not None), default=None)
    if last_new is None or first_back is None:
        return None
    return round(max(0.0, first_back - last_new), 3)


def figures(writes: Iterable[WriteRecord], on_new_primary: set[str], *, fault_t: float,
            errant: int | None = None, loss_t: float | None = None) -> dict[str, Any]:
    """`on_new_primary`: the msgs of this run's writes the new primary holds. Returns rto_seconds (None when no
    write was acknowledged by the new primary), lost (msgs, in write order), lost_ids, lost_count, rpo_seconds (the
    age of the oldest lost write when the site was lost — `loss_t`, the server gone, else the fault — 0 when none
    is lost), and, given the old primary's errant transaction count, whether they account for every lost write
    (each drill write is one transaction) and how many errant ones were never acknowledged (writes the client saw
    fail or never heard of: indeterminate, not lost)."""
    writes = list(writes)
    first_new = min((w.acked_t for w in writes if on_new(w) and w.acked_t is not None), default=None)
    lost = [w for w in writes if on_old(w) and w.acked_t is not None and w.msg not in on_new_primary]
    out: dict[str, Any] = {
        "rto_seconds": None if first_new is None else round(max(0.0, first_new - fault_t), 3),
        "lost": [w.msg for w in lost],
        "lost_ids": [w.id for w in lost],
        "lost_count": len(lost),
        "rpo_seconds": round(max(0.0, (fault_t if loss_t is None else loss_t)
                                 - min(w.acked_t for w in lost if w.acked_t is not None)), 3) if lost else 0.0,
        "acknowledged_old": sum(1 for w in writes if on_old(w) and w.acked_t is not None),
        "acknowledged_new": sum(1 for w in writes if on_new(w) and w.acked_t is not None),
        "acknowledged_back": sum(1 for w in writes if on_back(w) and w.acked_t is not None),
        # the planned part must lose nothing: writes the promoted replica (or the old primary once back) acknowledged
        # and the final servers do not hold — a failed drill whatever max_lost_writes allows the crash
        "switchover_lost": [w.msg for w in writes if (on_new(w) or on_back(w)) and w.acked_t is not None
                            and w.msg not in on_new_primary],
        "switchover_window_seconds": switchover_window(writes),
    }
    if errant is not None:
        out["errant"] = errant
        out["errant_cover_lost"] = errant >= len(lost)
        out["errant_unacknowledged"] = max(0, errant - len(lost))
    return out


# --- where an interrupted failover stands (drpoc recover, and the drill's own end) ------------------------------

@dataclass(frozen=True)
class PairState:
    """What the servers say, whatever any record says. `*_replicates`: replication is configured on that server
    (SHOW REPLICA STATUS has a row); `replica_own_writes`: the replica holds transactions of its own after the fork
    (it took writes as the primary); None when the source cannot be reached."""

    source_reachable: bool
    source_writable: bool | None
    source_replicates: bool | None
    replica_writable: bool
    replica_replicates: bool
    replica_own_writes: bool
    switching: bool = False  # the record says the switchover back began: the replica was fenced to hand back
    source_replication_broken: bool = False  # the re-pointed old primary's SQL thread stopped (errant GTIDs)


CANONICAL = "canonical"


def next_step(state: PairState) -> str:
    """The one next step towards the original topology (source the primary, replica replicating from it):

    - `canonical`            nothing to do
    - `bring-source-back`    the source is unreachable: bring it back (fenced) first
    - `unfence-source`       no promotion happened: the source takes writes again
    - `fence-replica`        the replica is writable but still a replica (never promoted): fence it
    - `undo-promotion`       the replica stopped replicating but took no writes: re-point it under the source
    - `fence-source`         the replica was promoted and took writes: the old primary must stop taking them
    - `reconcile-source`     the old primary is fenced: errant check, then re-point or re-seed it under the replica
    - `switch-back`          the old primary replicates from the promoted replica: the planned switchover
    - `repoint-replica`      the switchover promoted the source: the replica goes back under it
    Own writes are counted from the fork, which the switchover's own hand-back makes meaningless: once the record
    says it began (`switching`), only the switchover's remaining steps are taken.
    Two writers are never resolved by unfencing: every branch fences before anything is unfenced.
    """
    s = state
    if not s.source_reachable:
        return "bring-source-back"
    if s.switching:
        if s.source_replicates:
            return "switch-back"
        if s.replica_writable:
            return "fence-replica"
        if not s.replica_replicates:
            return "repoint-replica"
        return CANONICAL if s.source_writable else "unfence-source"
    if s.source_replicates and s.source_replication_broken:
        return "reconcile-source"  # re-pointed, but it cannot apply the new primary's writes: count again, re-seed
    if s.source_replicates:
        return "switch-back"  # re-pointed (or re-seeded) under the promoted replica: only the way back is left
    # promoted: replication was reset, or the replica holds writes of its own after the fork (even if a botched
    # re-point made it a replica again: its own writes would be lost by making the source the primary again)
    promoted = not s.replica_replicates or s.replica_own_writes
    if not promoted:
        if s.replica_writable:
            return "fence-replica"
        return CANONICAL if s.source_writable else "unfence-source"
    if not s.replica_own_writes:
        # stopped (or reset) but nothing written on it: the source still has everything — put the replica back
        return "fence-replica" if s.replica_writable else "undo-promotion"
    return "fence-source" if s.source_writable else "reconcile-source"
