"""A short soak (benchmarks/soak_kill.py has the long one): drills killed with a random signal at a random moment;
the tunnel is back in time and never bounced after, no acknowledged write is lost, and the archive accounts for
every drill that started."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("soak_kill", REPO / "benchmarks" / "soak_kill.py")
soak_kill = importlib.util.module_from_spec(_spec)
sys.modules["soak_kill"] = soak_kill  # dataclasses look their module up while the class is built
_spec.loader.exec_module(soak_kill)


def test_random_kills_leave_the_estate_and_the_evidence_whole(healthy_lab, tmp_path):
    seed = int(os.environ.get("DRPOC_SOAK_SEED", "20261130"))
    drills = int(os.environ.get("DRPOC_SOAK_DRILLS", "4"))
    max_outage = 15.0
    work = tmp_path / "work"
    work.mkdir()
    results, acc = soak_kill.run_soak(drills, seed, max_outage, tmp_path / "archive", work,
                                      say=lambda m: print(m, file=sys.stderr))
    for r in results:
        assert r.tunnel_back_after_s is not None and r.tunnel_back_after_s <= max_outage + 15, r
        assert not r.bounced, f"tunnel bounced after recovery: {r}"
        assert r.rows_missing == 0, r
    assert not acc["intents_without_outcome"] and not acc["intents_with_several_outcomes"], acc
    assert acc["verify_rc"] == 0, acc["verify"]
    assert acc["intents"] >= sum(1 for r in results if r.step_at_kill), acc
