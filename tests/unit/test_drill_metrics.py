"""core/metrics.py: Jepsen set arithmetic, nearest-rank quantiles, latencies, DR metrics from a hand-built timeline,
objectives and the verdict. Pure: no lab, no I/O."""
from __future__ import annotations

import json

import pytest

from drpoc_chaos.core.metrics import (
    OBJECTIVES,
    SCHEMA,
    Event,
    WriteRecord,
    compute_metrics,
    evaluate_objectives,
    first_event,
    latencies,
    quantiles,
    verdict,
    write_sets,
)

TAG = "abcd1234"


def w(seq: int, attempted: float, *, acked: float | None = None, id: int | None = None, visible: float | None = None,
      phase: str = "during", error: str | None = None) -> WriteRecord:
    return WriteRecord(msg=f"drpoc:{TAG}:{phase}:{seq:06d}", phase=phase, attempted_t=attempted, id=id,
                       acked_t=acked, visible_t=visible, error=error)


# ----------------------------------------------------------------------------------------------------------------
# write_sets


def test_write_sets_all_acknowledged_writes_observed():
    writes = [w(1, 0.0, acked=0.1, id=10), w(2, 0.2, acked=0.3, id=11)]
    sets = write_sets(writes, [(10, writes[0].msg), (11, writes[1].msg)], TAG)
    assert sets == {"attempted": 2, "acknowledged": 2, "observed": 2, "lost": [], "unexpected": [],
                    "duplicated": [], "indeterminate": []}


def test_write_sets_lost_unexpected_duplicated_indeterminate():
    ok = w(1, 0.0, acked=0.1, id=10)
    lost = w(2, 0.2, acked=0.3, id=11)                   # acknowledged, never on the replica
    dup = w(3, 0.4, acked=0.5, id=12)                    # on the replica twice
    unacked_applied = w(4, 0.6, error="Lost connection")  # not acknowledged, yet applied: indeterminate, allowed
    unacked_missing = w(5, 0.7, error="Lost connection")  # not acknowledged, not applied: fine
    stranger = f"drpoc:{TAG}:during:999999"               # this run's tag, never attempted
    other_run = "drpoc:ffffffff:during:000001"            # another run's row: not ours to judge
    observed = [(10, ok.msg), (12, dup.msg), (13, dup.msg), (14, unacked_applied.msg), (15, stranger),
                (16, other_run)]
    sets = write_sets([ok, lost, dup, unacked_applied, unacked_missing], observed, TAG)
    assert sets["attempted"] == 5
    assert sets["acknowledged"] == 3
    assert sets["observed"] == 3  # ok, dup, unacked_applied: only attempted msgs count
    assert sets["lost"] == [lost.msg]
    assert sets["unexpected"] == [stranger]
    assert sets["duplicated"] == [dup.msg]
    assert sets["indeterminate"] == [unacked_applied.msg]


def test_write_sets_lists_are_sorted_and_json_safe():
    writes = [w(i, float(i), acked=i + 0.1, id=i) for i in (3, 1, 2)]
    sets = write_sets(writes, [], TAG)
    assert sets["lost"] == sorted(x.msg for x in writes)
    json.dumps(sets)


def test_write_sets_empty():
    assert write_sets([], [], TAG) == {"attempted": 0, "acknowledged": 0, "observed": 0, "lost": [],
                                       "unexpected": [], "duplicated": [], "indeterminate": []}


# ----------------------------------------------------------------------------------------------------------------
# quantiles (nearest-rank: the value at rank ceil(p * n), no interpolation)


def test_quantiles_empty():
    assert quantiles([]) == {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}


def test_quantiles_single_value_and_rounding():
    assert quantiles([0.12345]) == {"p50": 0.123, "p95": 0.123, "p99": 0.123, "max": 0.123, "count": 1}


def test_quantiles_unsorted_input_never_interpolates():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    q = quantiles(values)
    assert q == {"p50": 3.0, "p95": 5.0, "p99": 5.0, "max": 5.0, "count": 5}
    assert all(v in values for k, v in q.items() if k != "count")


@pytest.mark.parametrize("n", [4, 8, 9, 20, 100, 1000])
def test_quantiles_values_are_sample_members_and_ordered(n):
    values = [float(i) for i in range(1, n + 1)]
    q = quantiles(values)
    assert q["count"] == n and q["max"] == float(n)
    assert q["p50"] <= q["p95"] <= q["p99"] <= q["max"]
    assert {q["p50"], q["p95"], q["p99"]} <= set(values)


@pytest.mark.parametrize("n, p50", [(4, 2.0), (8, 4.0), (100, 50.0)])
def test_quantiles_nearest_rank_median_even_rank(n, p50):
    assert quantiles([float(i) for i in range(1, n + 1)])["p50"] == p50


# p*n an odd integer: round-half-even once made these ranks one too high (p50 of 1..10 was 6)
@pytest.mark.parametrize("n, key, expected", [(2, "p50", 1.0), (10, "p50", 5.0), (6, "p50", 3.0),
                                              (100, "p95", 95.0), (100, "p99", 99.0), (20, "p95", 19.0)])
def test_quantiles_nearest_rank_odd_rank(n, key, expected):
    assert quantiles([float(i) for i in range(1, n + 1)])[key] == expected


# ----------------------------------------------------------------------------------------------------------------
# latencies


def test_latencies_visible_t_wins_over_the_timeline():
    writes = [w(1, 1.0, acked=1.0, id=5, visible=1.25)]
    samples = [{"t": 1.1, "replica_max_id": 5}]
    assert latencies(writes, samples) == [pytest.approx(0.25)]


def test_latencies_visible_before_ack_is_clamped_to_zero():
    assert latencies([w(1, 1.0, acked=1.2, id=5, visible=1.1)], []) == [0.0]


def test_latencies_from_first_sample_covering_the_id_after_the_ack():
    writes = [w(1, 1.0, acked=1.0, id=5), w(2, 2.0, acked=2.2, id=6)]
    samples = [{"t": 0.5, "replica_max_id": 9},       # before the ack: does not count
               {"t": 1.5, "replica_max_id": 4},       # does not cover id 5
               {"t": 2.0, "replica_max_id": None},    # not measured
               {"t": 2.5, "replica_max_id": 5},       # covers 5, not 6
               {"t": 3.5, "replica_max_id": 6}]
    assert latencies(writes, samples) == [pytest.approx(1.5), pytest.approx(1.3)]


def test_latencies_skip_unacknowledged_unseen_and_idless_writes():
    writes = [w(1, 1.0, error="x"),                  # not acknowledged
              w(2, 1.0, acked=1.1),                  # acknowledged without an id
              w(3, 1.0, acked=1.1, id=7)]            # never seen on the replica
    assert latencies(writes, [{"t": 5.0, "replica_max_id": 6}, {"t": 6.0}]) == []


# ----------------------------------------------------------------------------------------------------------------
# compute_metrics on a hand-built drill


def _events(**ts: float) -> list[dict]:
    return [{"name": name, "t": t, "at": None} for name, t in ts.items()]


EVENTS = _events(drill_started=0.0, fault_injected=2.0, outage_detected=6.5, recovery_started=12.0, tunnel_up=13.0,
                 io_reconnected=14.5, caught_up=16.0, drill_ended=18.0)


def _samples() -> list[dict]:
    """One sample a second. Before the fault source and replica agree (1 row). From the fault the source gets a row
    a second (ids 2..11 at t=3..12) that the replica does not; the replica applies them after it reconnects."""
    out = []
    for t in range(0, 19):
        src = 1 + max(0, min(t, 12) - 2) + (1 if t >= 14 else 0)   # id 12 written at t=13.5
        if t < 15:
            rep = 1
        elif t == 15:
            rep = 6
        else:
            rep = src
        lag = 0.01 if t <= 2 else (float(t - 2) if t < 16 else 0.02)
        out.append({"t": float(t), "source_rows": src, "replica_rows": rep, "source_max_id": src,
                    "replica_max_id": rep, "heartbeat_lag": lag,
                    "aws_tunnel": "up" if not 2 <= t < 13 else "down",
                    "onprem_tunnel": "up" if not 2 <= t < 13 else "down",
                    "io": "Yes" if t < 6 or t >= 15 else "Connecting", "sql": "Yes"})
    out.append({"t": 18.5, "source_rows": None, "replica_rows": None, "heartbeat_lag": None})  # a failed sample
    return out


def _writes() -> list[WriteRecord]:
    writes = [w(0, 1.0, acked=1.02, id=1, visible=1.05, phase="before")]
    # labelled "during" or not, the time window decides: t=2.0 (the fault itself) up to, not including, 13.0
    for i, t in enumerate(range(2, 12)):
        writes.append(w(i + 1, float(t) + 1 if i else 2.0, acked=(float(t) + 1 if i else 2.0) + 0.01, id=i + 2,
                        phase="during" if i % 2 else "misc"))
    writes.append(w(50, 7.5, error="(2013) Lost connection"))       # during, not acknowledged
    writes.append(w(51, 13.0, acked=13.5, id=12, phase="during"))   # at the tunnel's return: not during
    return writes


def test_compute_metrics_on_a_hand_built_timeline():
    writes = _writes()
    samples = _samples()
    sets = write_sets(writes, [(x.id, x.msg) for x in writes if x.id is not None], TAG)
    seen = {x.msg for x in writes if x.id is not None and x.id != 11}  # pretend id 11 was not observed
    m = compute_metrics(samples, EVENTS, writes, sets, seen)

    assert m["detection_seconds"] == 4.5           # 6.5 - 2.0
    assert m["outage_seconds"] == 11.0             # 13.0 - 2.0
    assert m["tunnel_recovery_seconds"] == 1.0     # 13.0 - 12.0
    assert m["replica_reconnect_seconds"] == 1.5   # 14.5 - 13.0
    assert m["catch_up_seconds"] == 1.5            # 16.0 - 14.5
    assert m["rto_seconds"] == 4.0       # 16.0 - 12.0

    # 10 acknowledged writes attempted in [2.0, 13.0) + the unacknowledged one at 7.5; id 12 (t=13.0) is after
    assert m["writes_during_outage"] == {"attempted": 11, "acknowledged": 10, "observed": 9}
    assert m["lost_writes"] == 0 and m["unexpected_writes"] == 0 and m["duplicated_writes"] == 0

    # rpo exposure: the largest source-replica row gap (t=14: 12 - 1) and the largest heartbeat lag (t=15: 13 s)
    assert m["rpo_exposure"] == {"max_writes": 11, "max_seconds": 13.0}

    # apply rate: last sample at or before the reconnect (t=14, 1 row) to the first at or after catch-up (t=16,
    # 12 rows): 11 rows in 2 s
    assert m["apply_rate_per_second"] == 5.5

    lat = m["replication_latency_seconds"]
    assert lat["count"] == 12
    # id 1 from visible_t (0.03 s); id 12 acked at 13.5 is first covered at t=16 (2.5 s); ids 2..5 are covered at
    # t=15 (rep max id 6), ids 6..11 at t=16
    assert lat["max"] == pytest.approx(13.0 - 0.01)   # id 2 acked at 2.01, covered at 15.0
    assert lat["p50"] is not None and lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    json.dumps(m)


def test_compute_metrics_observed_during_outage_is_none_without_a_readback():
    m = compute_metrics(_samples(), EVENTS, _writes(), None, None)
    assert m["writes_during_outage"]["observed"] is None
    assert m["lost_writes"] is None and m["unexpected_writes"] is None and m["duplicated_writes"] is None


def test_compute_metrics_without_a_fault_measures_nothing_of_an_outage():
    m = compute_metrics([{"t": 0.0, "source_rows": 1, "replica_rows": 1, "heartbeat_lag": 0.01}],
                        _events(drill_started=0.0, drill_ended=1.0), [w(1, 0.5, acked=0.6, id=1, visible=0.7)],
                        None)
    for key in ("detection_seconds", "outage_seconds", "tunnel_recovery_seconds", "replica_reconnect_seconds",
                "catch_up_seconds", "rto_seconds", "apply_rate_per_second"):
        assert m[key] is None, key
    assert m["writes_during_outage"]["attempted"] == 0
    assert m["rpo_exposure"] == {"max_writes": 0, "max_seconds": 0.01}
    assert m["replication_latency_seconds"]["count"] == 1


def test_compute_metrics_tunnel_never_back_counts_every_write_after_the_fault():
    events = _events(fault_injected=2.0, outage_detected=5.0)
    writes = [w(1, 1.0, acked=1.1, id=1), w(2, 3.0, acked=3.1, id=2), w(3, 100.0, acked=100.1, id=3)]
    m = compute_metrics([], events, writes, None)
    assert m["writes_during_outage"]["attempted"] == 2
    assert m["outage_seconds"] is None and m["detection_seconds"] == 3.0
    assert m["rpo_exposure"] == {"max_writes": None, "max_seconds": None}


def test_compute_metrics_apply_rate_needs_samples_on_both_sides():
    events = _events(fault_injected=1.0, tunnel_up=3.0, io_reconnected=4.0, caught_up=5.0)
    only_before = [{"t": 3.5, "replica_rows": 1}]
    assert compute_metrics(only_before, events, [], None)["apply_rate_per_second"] is None


def test_first_event_and_event_to_dict():
    assert first_event(EVENTS, "tunnel_up") == 13.0
    assert first_event(EVENTS, "nothing") is None
    assert Event("x", 1.23456, "2026-01-01T00:00:00Z").to_dict() == {"name": "x", "t": 1.235,
                                                                      "at": "2026-01-01T00:00:00Z"}
    assert Event("x", 1.0, "a", {"site": "aws"}).to_dict()["detail"] == {"site": "aws"}
    assert SCHEMA == "drpoc.journal/1"


# ----------------------------------------------------------------------------------------------------------------
# objectives


def test_evaluate_objectives_pass_miss_unmeasured_and_unknown():
    metrics = {"rpo_exposure": {"max_seconds": 13.0}, "rto_seconds": 70.0, "detection_seconds": None,
               "tunnel_recovery_seconds": 1.0, "catch_up_seconds": 1.5, "lost_writes": 0}
    results = evaluate_objectives(metrics, {"rpo_seconds": 13.0, "rto_seconds": 60, "detection_seconds": 30,
                                            "tunnel_recovery_seconds": None, "catch_up_seconds": 2,
                                            "max_lost_writes": 0, "no_such_objective": 1})
    by = {r["name"]: r for r in results}
    assert set(by) == {"rpo_seconds", "rto_seconds", "detection_seconds", "catch_up_seconds", "max_lost_writes"}
    assert by["rpo_seconds"]["passed"] is True and by["rpo_seconds"]["achieved"] == 13.0   # bound is inclusive
    assert by["rto_seconds"] == {"name": "rto_seconds", "label": OBJECTIVES["rto_seconds"][1], "objective": 60,
                                 "achieved": 70.0, "passed": False}
    assert by["detection_seconds"]["passed"] is False and by["detection_seconds"]["achieved"] is None
    assert by["catch_up_seconds"]["passed"] is True
    assert by["max_lost_writes"]["passed"] is True


def test_evaluate_objectives_path_through_a_missing_parent():
    r = evaluate_objectives({"rpo_exposure": None}, {"rpo_seconds": 5})
    assert r[0]["achieved"] is None and r[0]["passed"] is False


# ----------------------------------------------------------------------------------------------------------------
# verdict


def _journal(**overrides) -> dict:
    j = {"status": "completed", "deviated": False,
         "steady_states": {"before": {"steady_state_met": True, "probes": []}, "after": None},
         "run": [{"activity": {"name": "tunnel-down"}, "status": "succeeded", "output": {}}]}
    j.update(overrides)
    return j


CLEAN_SETS = {"lost": [], "unexpected": [], "duplicated": []}
PASSING = dict(fault_injected=True, expect_outage=True, outage_detected=True,
               objective_results=[{"name": "rto_seconds", "label": "RTO", "objective": 60, "achieved": 14.0,
                                   "passed": True}],
               sets=CLEAN_SETS)


def test_verdict_passing():
    assert verdict(_journal(), **PASSING) == {"passed": True, "status": "passed", "reasons": []}


def test_verdict_precondition_failed_names_the_failing_probes():
    before = {"steady_state_met": False, "probes": [
        {"activity": {"name": "aws-tunnel"}, "status": "succeeded", "tolerance_met": True},
        {"activity": {"name": "replica-threads"}, "status": "succeeded", "tolerance_met": False},
        {"activity": {"name": "lag"}, "status": "failed"}]}
    v = verdict(_journal(steady_states={"before": before}, run=[]),
                **{**PASSING, "fault_injected": False, "outage_detected": False})
    assert v["passed"] is False and v["status"] == "precondition-failed"
    assert v["reasons"] == ["steady state not met before the method (replica-threads, lag): no fault was injected"]


@pytest.mark.parametrize("status", ["interrupted", "aborted"])
def test_verdict_interrupted_run_is_aborted(status):
    v = verdict(_journal(status=status), **PASSING)
    assert v["status"] == "aborted" and not v["passed"]
    assert v["reasons"] == [f"the run was {status} before the drill finished"]


def test_verdict_fault_not_effective():
    v = verdict(_journal(), **{**PASSING, "outage_detected": False})
    assert v["status"] == "fault-not-effective"
    assert "the replica never lost its IO connection" in v["reasons"][0]
    v = verdict(_journal(), **{**PASSING, "fault_injected": False, "outage_detected": False})
    assert v["status"] == "fault-not-effective" and v["reasons"] == ["no fault was injected"]


def test_verdict_no_outage_expected_passes_without_a_fault():
    v = verdict(_journal(), **{**PASSING, "expect_outage": False, "fault_injected": False, "outage_detected": False})
    assert v["passed"] is True


def test_verdict_lost_writes_fail_and_are_listed():
    lost = [f"drpoc:{TAG}:during:{i:06d}" for i in range(12)]
    v = verdict(_journal(), **{**PASSING, "sets": {"lost": lost, "unexpected": [], "duplicated": []}})
    assert v["status"] == "failed" and not v["passed"]
    assert v["reasons"][0].startswith("12 acknowledged write(s) missing on the replica: " + lost[0])
    assert v["reasons"][0].endswith(" …") and lost[10] not in v["reasons"][0]


def test_verdict_lost_writes_within_allowance():
    v = verdict(_journal(), **{**PASSING, "sets": {"lost": ["a", "b"], "unexpected": [], "duplicated": []}},
                max_lost_writes=2)
    assert v["passed"] is True


def test_verdict_unexpected_and_duplicated_rows_fail():
    v = verdict(_journal(), **{**PASSING, "sets": {"lost": [], "unexpected": ["u"], "duplicated": ["d1", "d2"]}})
    assert v["status"] == "failed"
    assert v["reasons"] == ["1 unexpected row(s) on the replica", "2 write(s) duplicated on the replica"]


def test_verdict_activity_failed_quotes_the_error():
    run = [{"activity": {"name": "recover-tunnel"}, "status": "failed",
            "exception": ["Traceback ...\n", "chaoslib.exceptions.ActivityFailed: tunnel not back\n"]},
           {"activity": {"name": "write"}, "status": "failed", "output": "  no route  "}]
    v = verdict(_journal(run=run), **PASSING)
    assert v["status"] == "failed"
    assert v["reasons"] == ["activity 'recover-tunnel' failed: tunnel not back",
                            "activity 'write' failed: no route"]


def test_verdict_deviated_names_the_probes():
    after = {"steady_state_met": False, "probes": [
        {"activity": {"name": "ping-rows-match"}, "status": "succeeded", "tolerance_met": False}]}
    v = verdict(_journal(deviated=True, steady_states={"before": {"steady_state_met": True}, "after": after}),
                **PASSING)
    assert v["status"] == "failed"
    assert v["reasons"] == ["steady state deviated after the method (ping-rows-match)"]


def test_verdict_objective_missed_and_not_measured():
    results = [{"name": "rto_seconds", "label": "RTO", "objective": 60, "achieved": 70.0, "passed": False},
               {"name": "detection_seconds", "label": "detection", "objective": 30, "achieved": None,
                "passed": False},
               {"name": "max_lost_writes", "label": "lost", "objective": 0, "achieved": 3, "passed": False}]
    v = verdict(_journal(), **{**PASSING, "objective_results": results})
    assert v["status"] == "failed"
    # max_lost_writes is judged on the write sets, not repeated as an objective
    assert v["reasons"] == ["objective missed: RTO: achieved 70.0 > objective 60",
                            "objective not measured: detection"]


def test_verdict_extra_reasons_fail_a_passing_drill():
    v = verdict(_journal(), **PASSING, extra_reasons=["the dead-man's switch fired"])
    assert v == {"passed": False, "status": "failed", "reasons": ["the dead-man's switch fired"]}


def test_verdict_precondition_status_is_kept_when_more_goes_wrong():
    before = {"steady_state_met": False, "probes": []}
    v = verdict(_journal(steady_states={"before": before}), **PASSING, extra_reasons=["x"])
    assert v["status"] == "precondition-failed"
    assert v["reasons"][0] == "steady state not met before the method (see steady_states.before): no fault was injected"
    assert v["reasons"][-1] == "x"


@pytest.mark.parametrize("journal, status", [
    (_journal(steady_states={"before": {"steady_state_met": False, "probes": []}}), "precondition-failed"),
    (_journal(status="interrupted"), "aborted"),
])
def test_verdict_objectives_are_not_judged_for_a_drill_that_did_not_run(journal, status):
    results = [{"name": "rto_seconds", "label": "RTO", "objective": 60, "achieved": None, "passed": False}]
    v = verdict(journal, **{**PASSING, "objective_results": results})
    assert v["status"] == status and not any("objective" in r for r in v["reasons"])


def test_verdict_without_write_sets():
    assert verdict(_journal(), **{**PASSING, "sets": None})["passed"] is True


def test_write_record_to_dict_round_trips():
    r = w(1, 1.0, acked=1.1, id=3, visible=1.2)
    assert WriteRecord(**r.to_dict()) == r


def test_every_objective_reads_a_metric_compute_metrics_produces():
    """The failover drill's objectives read `metrics.failover`, which core.failover.figures produces."""
    from drpoc_chaos.core.failover import figures
    m = compute_metrics(_samples(), EVENTS, _writes(), write_sets(_writes(), [], TAG), set())
    m["failover"] = figures([WriteRecord("a", "old:x", 0.5, acked_t=0.6), WriteRecord("b", "new:x", 5.0, acked_t=5.1),
                             WriteRecord("c", "back:x", 9.0, acked_t=9.1)], {"a", "b", "c"}, fault_t=1.0)
    for name, (path, _label) in OBJECTIVES.items():
        node = m
        for key in path:
            assert isinstance(node, dict) and key in node, f"objective {name}: no metric {'.'.join(path)}"
            node = node[key]
        assert node is not None, name
