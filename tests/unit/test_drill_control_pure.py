"""drill/control.py, the pure parts: DrillConfig from an experiment's configuration (values typed from env-style
strings) and `_derive_events` (milestones the activities did not record, filled from the timeline)."""
from __future__ import annotations

from dataclasses import fields

import pytest

from drpoc_chaos.drill.control import DrillConfig, _derive_events


@pytest.fixture(autouse=True)
def _no_archive_env(monkeypatch):
    monkeypatch.delenv("DRPOC_ARCHIVE_DIR", raising=False)


# ----------------------------------------------------------------------------------------------------------------
# DrillConfig.from_configuration


def test_defaults():
    for configuration in (None, {}, {"inventory": "/x.yaml", "unrelated": "1"}):
        assert DrillConfig.from_configuration(configuration) == DrillConfig()
    d = DrillConfig()
    assert (d.scenario, d.sample_interval_seconds, d.max_outage_seconds, d.max_lost_writes) == ("drill", 0.5, 120.0, 0)
    assert d.deadman and d.lock and d.expect_outage and d.archive
    assert d.objective_rpo_seconds is None and d.archive_dir == "journal"


def test_env_style_strings_are_typed():
    # `--var` and `type: env` configuration values arrive as strings
    cfg = DrillConfig.from_configuration({
        "scenario": "vpn_outage", "sample_interval_seconds": "0.25", "max_outage_seconds": "180",
        "restore_timeout_seconds": "30", "objective_rpo_seconds": "180", "objective_rto_seconds": "60.5",
        "max_lost_writes": "2", "archive_dir": "/tmp/j"})
    assert cfg.scenario == "vpn_outage"
    assert cfg.sample_interval_seconds == 0.25 and isinstance(cfg.sample_interval_seconds, float)
    assert cfg.max_outage_seconds == 180.0 and isinstance(cfg.max_outage_seconds, float)
    assert cfg.objective_rpo_seconds == 180.0 and isinstance(cfg.objective_rpo_seconds, float)
    assert cfg.objective_rto_seconds == 60.5
    assert cfg.max_lost_writes == 2 and isinstance(cfg.max_lost_writes, int)
    assert cfg.archive_dir == "/tmp/j"


def test_native_values_are_kept_and_typed():
    cfg = DrillConfig.from_configuration({"max_outage_seconds": 90, "max_lost_writes": 1, "deadman": False,
                                          "scenario": 7, "objective_catch_up_seconds": 3})
    assert cfg.max_outage_seconds == 90.0 and isinstance(cfg.max_outage_seconds, float)
    assert cfg.max_lost_writes == 1 and cfg.deadman is False
    assert cfg.scenario == "7"
    assert cfg.objective_catch_up_seconds == 3.0 and isinstance(cfg.objective_catch_up_seconds, float)


@pytest.mark.parametrize("value, expected", [
    ("true", True), ("True", True), (" yes ", True), ("1", True), ("on", True), (True, True), (1, True),
    ("false", False), ("False", False), ("no", False), ("0", False), ("off", False), (False, False), (0, False),
])
def test_booleans(value, expected):
    for name in ("deadman", "lock", "expect_outage", "archive"):
        assert getattr(DrillConfig.from_configuration({name: value}), name) is expected, (name, value)


@pytest.mark.parametrize("empty", [None, ""])
def test_empty_values_mean_default(empty):
    cfg = DrillConfig.from_configuration({"max_outage_seconds": empty, "deadman": empty, "scenario": empty,
                                          "objective_rto_seconds": empty, "max_lost_writes": empty})
    assert cfg == DrillConfig()


def test_archive_dir_from_the_environment_unless_configured(monkeypatch):
    monkeypatch.setenv("DRPOC_ARCHIVE_DIR", "/srv/journals")
    assert DrillConfig.from_configuration({}).archive_dir == "/srv/journals"
    assert DrillConfig.from_configuration({"archive_dir": "mine"}).archive_dir == "mine"


def test_not_a_number_fails_loudly():
    with pytest.raises(ValueError):
        DrillConfig.from_configuration({"max_outage_seconds": "two minutes"})


def test_objectives_map_the_knobs():
    cfg = DrillConfig.from_configuration({"objective_rpo_seconds": "1", "objective_rto_seconds": "2",
                                          "objective_detection_seconds": "3",
                                          "objective_tunnel_recovery_seconds": "4",
                                          "objective_catch_up_seconds": "5", "max_lost_writes": "6"})
    assert cfg.objectives() == {"rpo_seconds": 1.0, "rto_seconds": 2.0, "detection_seconds": 3.0,
                                "tunnel_recovery_seconds": 4.0, "catch_up_seconds": 5.0, "max_lost_writes": 6}
    assert DrillConfig().objectives()["rpo_seconds"] is None


def test_every_field_is_settable_from_a_string():
    samples = {"str": "x", "float": "1.5", "float | None": "2.5", "int": "3", "bool": "yes"}
    for f in fields(DrillConfig):
        cfg = DrillConfig.from_configuration({f.name: samples[str(f.type)]})
        assert getattr(cfg, f.name) not in (None, ""), f.name


# ----------------------------------------------------------------------------------------------------------------
# _derive_events


SITES = ["aws", "onprem"]


def sample(t: float, io: str | None, aws: str = "up", onprem: str = "up") -> dict:
    return {"t": t, "io": io, "aws_tunnel": aws, "onprem_tunnel": onprem}


TIMELINE = [sample(0.0, "Yes"), sample(0.5, "Yes"),
            sample(1.0, "Yes", aws="down", onprem="down"),          # fault at 1.0; replica has not noticed yet
            sample(1.5, None, aws="down", onprem="down"),           # a failed sample: io unknown
            sample(2.0, "Connecting", aws="down", onprem="down"),   # detected
            sample(2.5, "No", aws="down", onprem="down"),
            sample(3.0, "Connecting", aws="up", onprem="connecting"),
            sample(3.5, "Connecting", aws="up", onprem="up"),       # tunnel up on both
            sample(4.0, "Connecting"),
            sample(4.5, "Yes"),                                     # reconnected
            sample(5.0, "Yes")]


def ev(name: str, t: float) -> dict:
    return {"name": name, "t": t, "at": "2026-11-29T17:00:00.000000Z"}


def test_no_fault_no_derivation():
    events = [ev("drill_started", 0.0), ev("drill_ended", 5.0)]
    assert _derive_events(TIMELINE, events, SITES) is events


def test_fills_detection_tunnel_up_and_reconnect_from_the_timeline():
    events = [ev("drill_started", 0.0), ev("fault_injected", 0.9), ev("recovery_started", 2.7),
              ev("drill_ended", 5.2)]
    out = _derive_events(TIMELINE, events, SITES)
    derived = {e["name"]: e for e in out if e.get("detail", {}).get("from") == "timeline"}
    assert {k: v["t"] for k, v in derived.items()} == {"outage_detected": 2.0, "tunnel_up": 3.5,
                                                       "io_reconnected": 4.5}
    assert all(e["at"] is None for e in derived.values())
    assert [e["t"] for e in out] == sorted(e["t"] for e in out)
    assert [e["name"] for e in out] == ["drill_started", "fault_injected", "outage_detected", "recovery_started",
                                        "tunnel_up", "io_reconnected", "drill_ended"]
    assert events == [ev("drill_started", 0.0), ev("fault_injected", 0.9), ev("recovery_started", 2.7),
                      ev("drill_ended", 5.2)]  # the input list is not changed


def test_recorded_events_win_over_the_timeline():
    events = [ev("fault_injected", 0.9), ev("outage_detected", 1.2), ev("recovery_started", 2.7),
              ev("tunnel_up", 3.1), ev("io_reconnected", 4.2)]
    out = _derive_events(TIMELINE, events, SITES)
    assert out == sorted(events, key=lambda e: e["t"])


def test_reconnect_is_measured_from_a_recorded_tunnel_up():
    events = [ev("fault_injected", 0.9), ev("outage_detected", 1.9), ev("tunnel_up", 4.2)]
    out = _derive_events(TIMELINE, events, SITES)
    assert [(e["name"], e["t"]) for e in out if e["at"] is None] == [("io_reconnected", 4.5)]


def test_no_tunnel_up_without_recovery_started():
    events = [ev("fault_injected", 0.9)]
    out = _derive_events(TIMELINE, events, SITES)
    assert [e["name"] for e in out] == ["fault_injected", "outage_detected"]


def test_nothing_to_derive_when_the_timeline_never_shows_it():
    flat = [sample(t, "Yes") for t in (0.0, 1.0, 2.0)]
    events = [ev("fault_injected", 0.5), ev("recovery_started", 5.0)]
    assert _derive_events(flat, events, SITES) == events  # never detected; no sample after the recovery started
    down = [sample(t, "Connecting", aws="down", onprem="down") for t in (0.0, 1.0, 2.0)]
    out = _derive_events(down, [ev("fault_injected", 0.5), ev("recovery_started", 1.5)], SITES)
    assert [e["name"] for e in out] == ["fault_injected", "outage_detected", "recovery_started"]


def test_tunnel_up_needs_every_site():
    timeline = [sample(1.0, "Connecting", aws="down", onprem="down"), sample(2.0, "Connecting", aws="up",
                                                                             onprem="connecting"),
                sample(3.0, "Yes", aws="up", onprem="up")]
    out = _derive_events(timeline, [ev("fault_injected", 0.5), ev("recovery_started", 1.5)], SITES)
    assert {e["name"]: e["t"] for e in out}["tunnel_up"] == 3.0
    out = _derive_events(timeline, [ev("fault_injected", 0.5), ev("recovery_started", 1.5)], ["aws"])
    assert {e["name"]: e["t"] for e in out}["tunnel_up"] == 2.0
