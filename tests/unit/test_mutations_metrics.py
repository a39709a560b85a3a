"""DR metrics pinned to the exact set each one reads, and the lost-writes allowance to its bound (mutation-killing).

The rest of the unit suite let through a lost-writes allowance off by one and metrics that read the wrong set
(lost counted from `unexpected`, writes during the outage "observed" counted from the acknowledged ones...). Here
every set and every count has a size no other one shares, so reading any neighbour gives a different number; the
allowance is checked on both sides of its bound, through the control's verdict (core.metrics.verdict) and through
the journal re-judged by the scheduler and the evidence reader (core.verdict.facts_from_journal -> judge).
Pure: hand-built ledgers, events and samples; no lab.
"""
from __future__ import annotations

import pytest

from drpoc_chaos.core.metrics import OBJECTIVES, WriteRecord, compute_metrics, evaluate_objectives, verdict, write_sets
from drpoc_chaos.core.verdict import facts_from_journal, judge

TAG = "5eed0001"


def w(seq: int, attempted: float, *, acked: bool = True, id: int | None = None,
      phase: str = "during") -> WriteRecord:
    return WriteRecord(msg=f"drpoc:{TAG}:{phase}:{seq:06d}", phase=phase, attempted_t=attempted, id=id,
                       acked_t=attempted + 0.01 if acked else None, error=None if acked else "(2013) Lost connection")


# --------------------------------------------------------------------------------------------------------------
# write_sets: each set, exactly


def _ledger():
    """3 fine, 2 lost, 1 duplicated, 4 indeterminate, 5 never applied and never acknowledged; 3 strangers with this
    run's tag and 1 row of another run on the replica."""
    fine = [w(i, float(i), id=100 + i) for i in range(3)]
    lost = [w(10 + i, 10.0 + i) for i in range(2)]
    dup = [w(20, 20.0, id=120)]
    indeterminate = [w(30 + i, 30.0 + i, acked=False, id=130 + i) for i in range(4)]
    unapplied = [w(40 + i, 40.0 + i, acked=False) for i in range(5)]
    strangers = [f"drpoc:{TAG}:during:{900 + i:06d}" for i in range(3)]
    other_run = "drpoc:ffff0000:during:000001"
    observed = ([(x.id, x.msg) for x in fine + indeterminate] + [(120, dup[0].msg), (121, dup[0].msg)]
                + [(900 + i, m) for i, m in enumerate(strangers)] + [(999, other_run)])
    writes = fine + lost + dup + indeterminate + unapplied
    return writes, observed, {"fine": fine, "lost": lost, "dup": dup, "indeterminate": indeterminate,
                              "unapplied": unapplied, "strangers": strangers}


def test_write_sets_each_set_is_exactly_its_own_members():
    writes, observed, g = _ledger()
    sets = write_sets(writes, observed, TAG)
    msgs = lambda ws: sorted(x.msg for x in ws)  # noqa: E731
    assert sets["lost"] == msgs(g["lost"])                            # acknowledged - observed
    assert sets["unexpected"] == sorted(g["strangers"])               # observed - attempted, this run's tag only
    assert sets["duplicated"] == msgs(g["dup"])                       # observed more than once
    assert sets["indeterminate"] == msgs(g["indeterminate"])          # not acknowledged, yet observed
    assert sets["attempted"] == 15
    assert sets["acknowledged"] == 6                                  # fine 3 + lost 2 + dup 1
    assert sets["observed"] == 8                                      # attempted and seen: fine 3 + dup 1 + indet. 4
    sizes = [len(sets[k]) for k in ("lost", "unexpected", "duplicated", "indeterminate")]
    assert sizes == [2, 3, 1, 4]                                      # all different: no set can stand in for another


# --------------------------------------------------------------------------------------------------------------
# compute_metrics: each write count from its own set

SETS = {"attempted": 40, "acknowledged": 30, "observed": 27,           # acknowledged - observed = 3, not len(lost)
        "lost": ["l1", "l2"], "unexpected": ["u1", "u2", "u3", "u4"],
        "duplicated": ["d1", "d2", "d3", "d4", "d5", "d6"], "indeterminate": ["i"] * 7}


def test_lost_unexpected_and_duplicated_writes_are_counted_from_their_own_set():
    m = compute_metrics([], [], [], SETS, set())
    assert (m["lost_writes"], m["unexpected_writes"], m["duplicated_writes"]) == (2, 4, 6)


def test_write_counts_from_the_real_write_sets():
    writes, observed, _ = _ledger()
    sets = write_sets(writes, observed, TAG)
    m = compute_metrics([], [], writes, sets, {msg for _, msg in observed})
    assert (m["lost_writes"], m["unexpected_writes"], m["duplicated_writes"]) == (2, 3, 1)


def _events(**ts: float) -> list[dict]:
    return [{"name": name, "t": t, "at": None} for name, t in ts.items()]


# differences all distinct: detection 5.5, outage 21, tunnel recovery 3, reconnect 4, catch-up 8, RTO 15
EVENTS = _events(drill_started=0.0, fault_injected=2.0, outage_detected=7.5, recovery_started=20.0, tunnel_up=23.0,
                 io_reconnected=27.0, caught_up=35.0, drill_ended=40.0)


def _outage_writes() -> tuple[list[WriteRecord], set[str]]:
    """Around the outage window [fault 2.0, tunnel_up 23.0): 8 writes attempted inside it, 5 acknowledged, 3 of
    them seen on the replica plus 1 unacknowledged one seen (observed 4); writes outside the window, seen or not,
    and the phase labels must not matter."""
    inside = [w(1, 2.0, id=1),                       # at the fault itself: inside
              w(2, 5.0, id=2, phase="misc"),          # label is not "during": still inside
              w(3, 9.0, id=3),
              w(4, 12.0, acked=False, id=4),          # not acknowledged, yet applied (seen)
              w(5, 15.0, acked=False),                # not acknowledged, not applied
              w(6, 18.0),                             # acknowledged, never seen
              w(7, 21.0, acked=False),                # between recovery start and tunnel up: inside
              w(8, 22.5)]                             # acknowledged, never seen
    outside = [w(50, 1.0, id=50, phase="during"),     # before the fault, labelled "during"
               w(51, 23.0, id=51, phase="during"),    # at the tunnel's return: outside
               w(52, 30.0, id=52)]
    seen = {x.msg for x in inside if x.id is not None} | {x.msg for x in outside}
    return inside + outside, seen


def test_writes_during_outage_counts_attempted_acknowledged_and_observed_each_from_its_own_set():
    writes, seen = _outage_writes()
    m = compute_metrics([], EVENTS, writes, None, seen)
    assert m["writes_during_outage"] == {"attempted": 8, "acknowledged": 5, "observed": 4}


def test_writes_during_outage_observed_is_unknown_without_a_readback_not_zero():
    writes, _ = _outage_writes()
    assert compute_metrics([], EVENTS, writes, None, None)["writes_during_outage"]["observed"] is None
    assert compute_metrics([], EVENTS, writes, None, set())["writes_during_outage"]["observed"] == 0


def test_each_duration_is_the_difference_of_its_own_two_events():
    m = compute_metrics([], EVENTS, [], None)
    assert m["detection_seconds"] == 5.5           # outage_detected - fault_injected
    assert m["outage_seconds"] == 21.0             # tunnel_up - fault_injected
    assert m["tunnel_recovery_seconds"] == 3.0     # tunnel_up - recovery_started
    assert m["replica_reconnect_seconds"] == 4.0   # io_reconnected - tunnel_up
    assert m["catch_up_seconds"] == 8.0            # caught_up - io_reconnected
    assert m["rto_seconds"] == 15.0                # caught_up - recovery_started


def test_rpo_exposure_reads_the_row_gap_and_the_heartbeat_lag():
    samples = [
        {"t": 0.0, "source_rows": 10, "replica_rows": 10, "source_max_id": 10, "replica_max_id": 10,
         "heartbeat_lag": 0.5},
        {"t": 1.0, "source_rows": 17, "replica_rows": 10, "source_max_id": 40, "replica_max_id": 10,
         "heartbeat_lag": 9.25},   # the largest lag is not the last one
        {"t": 2.0, "source_rows": 20, "replica_rows": 16, "source_max_id": 43, "replica_max_id": 39,
         "heartbeat_lag": 3.0},
        {"t": 3.0, "source_rows": None, "replica_rows": 16, "heartbeat_lag": None},
    ]
    m = compute_metrics(samples, [], [], None)
    # rows, not ids: the id gap is 30 at t=1 (auto-increment gaps), the row gap 7
    assert m["rpo_exposure"] == {"max_writes": 7, "max_seconds": 9.25}


def test_every_objective_reads_the_metric_it_names():
    assert OBJECTIVES["max_lost_writes"][0] == ("lost_writes",)
    m = compute_metrics([], EVENTS, [], SETS, set())
    m["rpo_exposure"] = {"max_writes": 11, "max_seconds": 1.75}
    by = {r["name"]: r["achieved"] for r in evaluate_objectives(m, {name: 1000 for name in OBJECTIVES})}
    assert by == {"rpo_seconds": 1.75, "rto_seconds": 15.0, "detection_seconds": 5.5, "tunnel_recovery_seconds": 3.0,
                  "catch_up_seconds": 8.0, "max_lost_writes": 2, "failover_rto_seconds": None,
                  "failover_rpo_seconds": None, "switchover_window_seconds": None}
    m["failover"] = {"rto_seconds": 4.2, "rpo_seconds": 0.3, "switchover_window_seconds": 0.05}
    by = {r["name"]: r["achieved"] for r in evaluate_objectives(m, {name: 1000 for name in OBJECTIVES})}
    assert (by["failover_rto_seconds"], by["failover_rpo_seconds"], by["switchover_window_seconds"]) == (4.2, 0.3, 0.05)


# --------------------------------------------------------------------------------------------------------------
# the lost-writes allowance: `lost <= max_lost_writes` passes, one more fails

def _journal() -> dict:
    return {"status": "completed", "deviated": False,
            "steady_states": {"before": {"steady_state_met": True, "probes": []}, "after": None},
            "run": [{"activity": {"name": "tunnel-down"}, "status": "succeeded", "output": {}}]}


def _lost(n: int) -> list[str]:
    return [f"drpoc:{TAG}:during:{i:06d}" for i in range(n)]


ALLOWANCE = [  # (max_lost_writes, lost, passes)
    (1, 1, True),
    (1, 2, False),
    (0, 1, False),
    (0, 0, True),
    (2, 2, True),
    (2, 3, False),
]


@pytest.mark.parametrize("max_lost, n_lost, passes", ALLOWANCE)
def test_verdict_lost_writes_allowance_is_inclusive(max_lost, n_lost, passes):
    sets = {"lost": _lost(n_lost), "unexpected": [], "duplicated": []}
    v = verdict(_journal(), fault_injected=True, expect_outage=True, outage_detected=True, objective_results=[],
                sets=sets, max_lost_writes=max_lost)
    assert v["passed"] is passes
    if passes:
        assert v == {"passed": True, "status": "passed", "reasons": []}
    else:
        assert v["status"] == "failed"
        assert v["reasons"] == [f"{n_lost} acknowledged write(s) missing on the replica: " + ", ".join(sets["lost"])]


def test_verdict_default_allowance_is_zero():
    sets = {"lost": _lost(1), "unexpected": [], "duplicated": []}
    v = verdict(_journal(), fault_injected=True, expect_outage=True, outage_detected=True, objective_results=[],
                sets=sets)
    assert v["passed"] is False


@pytest.mark.parametrize("max_lost, n_lost, passes", ALLOWANCE)
def test_max_lost_writes_objective_is_inclusive(max_lost, n_lost, passes):
    [r] = evaluate_objectives({"lost_writes": n_lost}, {"max_lost_writes": max_lost})
    assert (r["achieved"], r["objective"], r["passed"]) == (n_lost, max_lost, passes)


@pytest.mark.parametrize("max_lost, n_lost, passes", ALLOWANCE)
def test_the_whole_chain_from_the_ledger_to_the_verdict(max_lost, n_lost, passes):
    """write_sets -> compute_metrics -> evaluate_objectives -> verdict, as the drill control chains them."""
    writes = [w(i, 5.0 + i, id=i + 1) for i in range(4)]
    observed = [(x.id, x.msg) for x in writes[n_lost:]]              # the first n_lost acknowledged writes are lost
    sets = write_sets(writes, observed, TAG)
    metrics = compute_metrics([], EVENTS, writes, sets, {m for _, m in observed})
    assert metrics["lost_writes"] == n_lost
    results = evaluate_objectives(metrics, {"max_lost_writes": max_lost})
    v = verdict(_journal(), fault_injected=True, expect_outage=True, outage_detected=True,
                objective_results=results, sets=sets, max_lost_writes=max_lost)
    assert v["passed"] is passes


def _recorded_journal(max_lost: int, n_lost: int) -> dict:
    j = _journal()
    j["drpoc"] = {
        "events": [{"name": "fault_injected", "t": 2.0}, {"name": "outage_detected", "t": 7.5}],
        "writes": {"lost": _lost(n_lost), "unexpected": [], "duplicated": []},
        "metrics": {"lost_writes": n_lost},
        "objectives": {"max_lost_writes": max_lost},
        "objective_results": evaluate_objectives({"lost_writes": n_lost}, {"max_lost_writes": max_lost}),
        "settings": {"expect_outage": True},
        "verdict": {"passed": True, "status": "passed", "reasons": []},
    }
    return j


@pytest.mark.parametrize("max_lost, n_lost, passes", ALLOWANCE)
def test_a_journal_re_judged_keeps_its_allowance(max_lost, n_lost, passes):
    """The scheduler and the evidence reader judge the journal again: the allowance recorded in its objectives
    applies there too, with the same bound."""
    facts = facts_from_journal(_recorded_journal(max_lost, n_lost))
    assert (facts.max_lost_writes, len(facts.lost)) == (max_lost, n_lost)
    assert judge(facts).passed is passes


@pytest.mark.parametrize("max_lost, n_lost, passes", ALLOWANCE)
def test_a_journal_that_lists_no_ids_but_counts_lost_writes_keeps_its_allowance(max_lost, n_lost, passes):
    j = _recorded_journal(max_lost, n_lost)
    j["drpoc"]["writes"] = {}
    assert judge(facts_from_journal(j)).passed is passes
