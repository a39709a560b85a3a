"""With MySQL's production replica settings (`drpoc lab up --mysql-defaults`: net timeout 60 s, heartbeat 30 s,
connect retry 60 s) the shipped values cannot pass: the drill is refused before the fault, with the arithmetic; the
values docs/REAL_HOSTS.md derives from those settings (docs/examples/mysql-defaults-vars.yaml) pass. The slowest
lab test (~3 min: the replica's own timeouts); the lab's knobs are put back afterwards whatever happens."""
from __future__ import annotations

import pytest

from drpoc_chaos.lab.lifecycle import LabSettings
from drpoc_chaos.lab.topology import MYSQL_DEFAULT_KNOBS, ReplicaKnobs

from .test_drills import REPO, run_drill, tunnel_up_both

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def mysql_defaults_lab(lab):
    result = lab.up(LabSettings(knobs=MYSQL_DEFAULT_KNOBS))
    assert result["healthy"], result["problems"]
    try:
        yield lab
    finally:
        lab.up(LabSettings(knobs=ReplicaKnobs()))


def test_shipped_values_are_refused_with_the_arithmetic(mysql_defaults_lab, tmp_path):
    r, journal = run_drill(tmp_path, "vpn_outage")
    d = journal["drpoc"]
    assert r.returncode == 1
    assert d["verdict"]["status"] == "not-started" and d["verdict"]["cause"] == "infeasible", d["verdict"]
    reason = d["verdict"]["reasons"][0]
    assert "objective_detection_seconds 30 cannot be met" in reason and "60.5s" in reason
    assert "catch_up_timeout_seconds 60" in reason
    assert "fault_injected" not in [e["name"] for e in d["events"]] and journal["run"] == []
    assert tunnel_up_both()


def test_documented_values_pass(mysql_defaults_lab, tmp_path):
    r, journal = run_drill(tmp_path, "vpn_outage", timeout=420,
                           var_file=REPO / "docs" / "examples" / "mysql-defaults-vars.yaml")
    d = journal["drpoc"]
    assert r.returncode == 0 and d["verdict"]["passed"], (d["verdict"], r.stderr[-2000:])
    assert d["feasibility"]["feasible"] and not d["feasibility"]["warnings"]
    m, fig = d["metrics"], d["feasibility"]["figures"]
    # the arithmetic holds on the real thing: detection ≈ net timeout, RPO between its best and worst case
    assert 55 <= m["detection_seconds"] <= fig["expected_detection_seconds"] + 2
    assert fig["rpo_min_seconds"] - 10 <= m["rpo_exposure"]["max_seconds"] <= fig["rpo_worst_seconds"]
    print(f"mysql defaults: detection {m['detection_seconds']}s, reconnect {m['replica_reconnect_seconds']}s, "
          f"RTO {m['rto_seconds']}s, RPO {m['rpo_exposure']['max_seconds']}s")
