"""core/feasibility.py: refuse a drill its replica cannot pass, with the arithmetic; pure."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drpoc_chaos.core.feasibility import ReplicaSettings, assess

REPO = Path(__file__).resolve().parents[2]
LAB = ReplicaSettings(net_timeout=4, heartbeat_period=1, connect_retry=1)
MYSQL_DEFAULTS = ReplicaSettings(net_timeout=60, heartbeat_period=30, connect_retry=60)


def config(name: str = "vpn_outage", **overrides) -> dict:
    cfg = yaml.safe_load((REPO / "experiments" / f"{name}.yaml").read_text())["configuration"]
    cfg.update(overrides)
    return cfg


@pytest.mark.parametrize("name", ["vpn_outage", "vpn_one_sided_recovery", "replica_stuck_connecting",
                                  "vpn_outage_under_load"])
def test_shipped_experiments_are_feasible_on_the_lab(name):
    result = assess(LAB, config(name))
    assert result.feasible, result.refusals
    assert not result.warnings


def test_mysql_defaults_refuse_the_shipped_values_with_the_arithmetic():
    result = assess(MYSQL_DEFAULTS, config())
    text = " | ".join(result.refusals)
    assert not result.feasible
    # detection objective 30 s vs a 60 s net timeout: the finding the issue measured
    assert "objective_detection_seconds 30 cannot be met" in text and "60.5s" in text
    assert "detect_timeout_seconds 30 is too short" in text and "125.5" in text
    assert "catch_up_timeout_seconds 60" in text and "≥ 125" in text
    assert "objective_rpo_seconds 60 cannot be met" in text and "180s" in text
    assert "max_outage_seconds 120" in text


def test_documented_mysql_defaults_values_are_feasible_without_warnings():
    values = yaml.safe_load((REPO / "docs" / "examples" / "mysql-defaults-vars.yaml").read_text())["configuration"]
    values.pop("inventory", None)
    result = assess(MYSQL_DEFAULTS, config(**values))
    assert result.feasible, result.refusals
    assert not result.warnings, result.warnings


@pytest.mark.parametrize("key,value,needle", [
    ("objective_detection_seconds", 4.4, "objective_detection_seconds 4.4 cannot be met"),
    ("objective_detection_seconds", 4.5, None),          # exactly the net timeout + resolution: possible
    ("detect_timeout_seconds", 13.4, "detect_timeout_seconds 13.4 is too short"),
    ("detect_timeout_seconds", 13.5, None),
    ("catch_up_timeout_seconds", 9.9, "catch_up_timeout_seconds 9.9"),
    ("catch_up_timeout_seconds", 10, None),
    ("objective_rpo_seconds", 8.9, "objective_rpo_seconds 8.9 cannot be met"),
    ("max_outage_seconds", 13.4, "max_outage_seconds 13.4"),
    ("max_outage_seconds", 13.5, None),
])
def test_each_bound_is_exact(key, value, needle):
    result = assess(LAB, config(**{key: value}))
    if needle is None:
        assert result.feasible, result.refusals
    else:
        assert any(needle in r for r in result.refusals), result.refusals


def test_a_long_hold_counts_in_the_planned_outage():
    result = assess(LAB, config(outage_seconds=60, max_outage_seconds=64))
    assert any("max_outage_seconds 64" in r for r in result.refusals)
    assert assess(LAB, config(outage_seconds=60, max_outage_seconds=65, objective_rpo_seconds=120)).feasible


def test_rpo_between_best_and_worst_case_is_a_warning_not_a_refusal():
    result = assess(MYSQL_DEFAULTS, config(detect_timeout_seconds=130, catch_up_timeout_seconds=130,
                                           max_outage_seconds=300, objective_detection_seconds=61,
                                           objective_rpo_seconds=200, objective_rto_seconds=200))
    assert result.feasible, result.refusals
    assert any("objective_rpo_seconds 200 holds only if" in w for w in result.warnings)


def test_a_drill_that_restarts_the_replica_itself_is_not_held_to_the_connect_retry():
    slow_retry = ReplicaSettings(net_timeout=4, heartbeat_period=1, connect_retry=600)
    assert not assess(slow_retry, config()).feasible
    assert assess(slow_retry, config("replica_stuck_connecting")).feasible


def test_unknown_settings_are_warnings():
    result = assess(ReplicaSettings(None, None, None), config())
    assert result.feasible and "net timeout could not be read" in result.warnings[0]
    result = assess(ReplicaSettings(4, None, None), config())
    assert result.feasible and any("connect retry could not be read" in w for w in result.warnings)


def test_no_outage_expected_checks_nothing_about_outages():
    assert assess(MYSQL_DEFAULTS, config(expect_outage=False)).feasible


def test_heartbeat_not_below_net_timeout_is_warned():
    result = assess(ReplicaSettings(4, 4, 1), config())
    assert any("heartbeat period 4s is not below the net timeout" in w for w in result.warnings)
