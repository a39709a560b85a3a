"""RTO and counted RPO of a site failover from the writer's ledger (core.failover), pure."""
from __future__ import annotations

from drpoc_chaos.core.failover import figures
from drpoc_chaos.core.metrics import WriteRecord


def w(msg: str, phase: str, acked: float | None) -> WriteRecord:
    return WriteRecord(msg=msg, phase=phase, attempted_t=(acked or 0) - 0.01, acked_t=acked)


def test_nothing_lost_rto_is_fault_to_first_ack_on_the_new_primary():
    writes = [w("a", "old:before", 1.0), w("b", "old:before", 2.0), w("c", "new:after", 9.5), w("d", "new:after", 9.6)]
    f = figures(writes, {"a", "b", "c", "d"}, fault_t=3.0, errant=0)
    assert f["rto_seconds"] == 6.5 and f["lost"] == [] and f["rpo_seconds"] == 0.0
    assert f["errant_cover_lost"] is True and (f["acknowledged_old"], f["acknowledged_new"]) == (2, 2)


def test_the_newest_acknowledged_writes_lost_in_a_crash_are_counted_and_named():
    writes = [w("a", "old:before", 1.0), w("b", "old:during", 2.6), w("c", "old:during", 2.9),
              w("x", "old:during", None),  # never acknowledged: not lost, indeterminate at most
              w("d", "new:after", 7.0)]
    f = figures(writes, {"a", "d"}, fault_t=3.0, errant=3)
    assert f["lost"] == ["b", "c"] and f["lost_count"] == 2
    assert f["rpo_seconds"] == 0.4  # the oldest lost write was acknowledged 0.4 s before the fault
    assert f["errant"] == 3 and f["errant_cover_lost"] is True
    assert figures(writes, {"a", "d"}, fault_t=3.0, errant=1)["errant_cover_lost"] is False


def test_no_write_on_the_new_primary_has_no_rto():
    f = figures([w("a", "old:before", 1.0)], {"a"}, fault_t=2.0)
    assert f["rto_seconds"] is None and "errant" not in f


# --- the switchover back ----------------------------------------------------------------------------------------

def test_switchover_window_is_last_write_on_the_promoted_to_first_back_on_the_old_primary():
    from drpoc_chaos.core.failover import switchover_window
    writes = [w("a", "new:fo", 10.0), w("b", "new:fo", 10.02), w("x", "new:fo", None), w("c", "back:fo", 10.07),
              w("d", "back:fo", 10.09)]
    assert switchover_window(writes) == 0.05
    assert switchover_window(writes[:3]) is None  # no write came back: not measured, never 0
    assert figures(writes, {"a", "b", "c", "d"}, fault_t=1.0)["switchover_window_seconds"] == 0.05


def test_rpo_is_the_age_of_the_oldest_lost_write_when_the_server_died():
    """The tunnel goes down first (the fault), the server dies a moment later (the loss): writes acknowledged in
    between are lost and their age is counted from the loss, not from the fault."""
    writes = [w("a", "old:fo", 1.0), w("b", "old:fo", 3.02), w("c", "old:fo", 3.04), w("d", "new:fo", 8.0)]
    writes[1].id, writes[2].id = 41, 42
    f = figures(writes, {"a", "d"}, fault_t=3.0, loss_t=3.05, errant=3)
    assert f["lost_ids"] == [41, 42] and f["rpo_seconds"] == 0.03
    assert f["errant_unacknowledged"] == 1 and f["errant_cover_lost"] is True
    assert figures(writes, {"a", "d"}, fault_t=3.0)["rpo_seconds"] == 0.0  # against the fault: after it


def test_a_write_lost_after_the_promotion_is_named_apart():
    """The crash may lose the newest old-primary writes (max_lost_writes decides); the promoted replica's and the
    returned primary's writes must all survive — the drill control fails the drill for any of them."""
    writes = [w("a", "old:fo", 1.0), w("b", "old:fo", 3.01), w("c", "new:fo", 8.0), w("d", "back:fo", 12.0)]
    f = figures(writes, {"a", "c"}, fault_t=3.0)
    assert f["lost"] == ["b"] and f["switchover_lost"] == ["d"]
    assert figures(writes, {"a", "b", "c", "d"}, fault_t=3.0)["switchover_lost"] == []
