"""The campaign's pure part: selection (FIS-like modes), who may start next (max K, never two on one gateway), when
to halt, and the summary."""
from __future__ import annotations

import pytest

from drpoc_chaos.core import campaign as cp

PAIRS = ["onprem", "onprem2", "onprem3", "onprem4"]


def test_all_keeps_the_inventory_order():
    assert cp.choose("all", PAIRS, seed=1) == PAIRS
    assert cp.choose(None, PAIRS, seed=1) == PAIRS


def test_count_and_percent_pick_at_random_but_replayably():
    a = cp.choose("count:2", PAIRS, seed=7)
    assert len(a) == 2 and set(a) <= set(PAIRS) and cp.choose("count:2", PAIRS, seed=7) == a
    picks = {tuple(cp.choose("count:2", PAIRS, seed=s)) for s in range(30)}
    assert len(picks) > 3  # the seed matters
    assert len(cp.choose("percent:50", PAIRS, seed=3)) == 2
    assert len(cp.choose("percent:10", PAIRS, seed=3)) == 1   # rounded up: any positive share drills one
    assert len(cp.choose("percent:100", PAIRS, seed=3)) == 4


def test_explicit_lists_keep_their_order():
    assert cp.choose("list:onprem3,onprem", PAIRS, seed=0) == ["onprem3", "onprem"]
    assert cp.choose(["onprem2", "onprem4"], PAIRS, seed=0) == ["onprem2", "onprem4"]


@pytest.mark.parametrize("bad, words", [
    ("count:0", "at least 1"), ("count:x", "whole number"), ("count:9", "only 4 pairs"),
    ("percent:0", "above 0"), ("percent:150", "at most 100"), ("percent:", "number"),
    ("list:onprem,nope", "no pair 'nope'"), ("list:", "empty"), ("list:onprem,onprem", "twice"),
    ("some", "is not all, count:N"), ("--help", "is not all, count:N"),
])
def test_bad_selections_are_refused_with_what_to_write(bad, words):
    with pytest.raises(cp.CampaignError, match=words.replace("(", r"\(")):
        cp.choose(bad, PAIRS, seed=0)


def test_a_hostile_pair_name_is_cut_short_in_the_message():
    with pytest.raises(cp.CampaignError) as e:
        cp.choose(["x" * 5000], PAIRS, seed=0)
    assert len(str(e.value)) < 300


GW = {"onprem": ["onprem-vpn"], "onprem2": ["onprem2-vpn"], "onprem3": ["onprem-vpn"], "onprem4": ["onprem4-vpn"]}


def test_next_to_start_respects_parallelism_and_gateways():
    assert cp.next_to_start(PAIRS, [], GW, 2) == "onprem"
    # onprem3 shares onprem's gateway: skipped while onprem runs, onprem2 goes instead
    assert cp.next_to_start(["onprem3", "onprem2"], ["onprem"], GW, 2) == "onprem2"
    assert cp.next_to_start(["onprem3"], ["onprem"], GW, 3) is None
    assert cp.next_to_start(["onprem4"], ["onprem", "onprem2"], GW, 2) is None   # K reached
    assert cp.next_to_start(["onprem3"], [], GW, 1) == "onprem3"


def test_halt_on_the_first_failure_only_when_asked():
    ok = cp.Outcome("onprem", 1, state="passed")
    bad = cp.Outcome("onprem2", 2, state="failed", reasons=["lost 3 writes"])
    assert cp.halt_reason(ok, True) is None
    assert cp.halt_reason(bad, False) is None
    assert cp.halt_reason(bad, True) == "the drill of pair onprem2 did not pass: lost 3 writes"
    assert "error" in cp.halt_reason(cp.Outcome("onprem3", 3, state="error"), True)


def test_summary_lists_every_chosen_pair_with_halted_ones_not_run():
    outs = [cp.Outcome("onprem2", 2, state="failed", reasons=["x"]), cp.Outcome("onprem", 1, state="passed"),
            cp.Outcome("onprem3", 3)]
    s = cp.summary(campaign_id="c" * 32, flow_run_id=None, scenario="experiments/vpn_outage.yaml", inventory="lab",
                   selection="all", seed=5, max_parallel=2, started="a", finished="b",
                   chosen=["onprem", "onprem2", "onprem3"], outcomes=outs, halt="the drill of pair onprem2 …")
    assert s["schema"] == "drpoc-campaign/1" and s["halted"] is True
    assert [o["pair"] for o in s["outcomes"]] == ["onprem", "onprem2", "onprem3"]
    assert s["outcomes"][2]["state"] == cp.NOT_RUN == "not run: campaign halted"
    assert s["passed"] == 1 and s["not_passed"] == ["onprem2", "onprem3"]
