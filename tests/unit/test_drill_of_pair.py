"""Whose drill is a pair under? Read from the drill lock on its fault gateway (`<scenario>@<pair>`): the blast-radius
watch and the campaign's health probe excuse a pair only while a live drill of that very pair holds it."""
from __future__ import annotations

import time

import pytest
import yaml

from drpoc_chaos.drill import blast_radius
from drpoc_chaos.inventory import parse_fleet
from drpoc_chaos.lab.inventory_file import fleet_inventory
from drpoc_chaos.lab.topology import Paths, build_topology


@pytest.fixture
def fleet(tmp_path):
    paths = Paths(state=tmp_path)
    (tmp_path / "secrets").mkdir()
    for f in ("mysql_password", "repl_password"):
        (tmp_path / "secrets" / f).write_text("x")
    return parse_fleet(yaml.safe_dump(fleet_inventory(paths, "ipsec", build_topology(3))), tmp_path / "inv.yaml")


def _holder(monkeypatch, owner):
    asked: list[str] = []

    def lock_holder(gw, pool=None):
        asked.append(gw.host.name)
        if isinstance(owner, Exception):
            raise owner
        return owner
    monkeypatch.setattr(blast_radius.safety, "lock_holder", lock_holder)
    return asked


def test_a_live_drill_of_the_pair_is_named_by_its_run(monkeypatch, fleet):
    asked = _holder(monkeypatch, {"run_id": "r1", "scenario": "vpn_outage@onprem2", "expires": time.time() + 600})
    assert blast_radius.drill_of_pair(fleet.pairs["onprem2"], None) == "r1"
    assert asked == ["onprem2-vpn"]                      # the pair's fault gateway, where its drill locks


@pytest.mark.parametrize("owner", [
    None,                                                                        # no lock
    {"run_id": "r1", "scenario": "vpn_outage@onprem3", "expires": time.time() + 600},   # another pair's drill
    {"run_id": "r1", "scenario": "vpn_outage@onprem22", "expires": time.time() + 600},  # a prefix is not the pair
    {"run_id": "r1", "scenario": "vpn_outage", "expires": time.time() + 600},    # a one-pair label says no pair
    {"run_id": "r1", "scenario": "vpn_outage@onprem2", "expires": time.time() - 5},     # lease ran out: dead drill
    {"unreadable": "garbage"},
    OSError("gateway did not answer"),                                           # unknown: judge the pair
])
def test_anything_else_excuses_nothing(monkeypatch, fleet, owner):
    _holder(monkeypatch, owner)
    assert blast_radius.drill_of_pair(fleet.pairs["onprem2"], None) is None


def test_a_drill_does_not_excuse_itself(monkeypatch, fleet):
    _holder(monkeypatch, {"run_id": "mine", "scenario": "vpn_outage@onprem2", "expires": time.time() + 600})
    assert blast_radius.drill_of_pair(fleet.pairs["onprem2"], None, not_run_id="mine") is None
    assert blast_radius.drill_of_pair(fleet.pairs["onprem2"], None, not_run_id="other") == "mine"


def test_a_lock_without_a_lease_still_names_the_drill(monkeypatch, fleet):
    _holder(monkeypatch, {"run_id": "r9", "scenario": "x@onprem2"})
    assert blast_radius.drill_of_pair(fleet.pairs["onprem2"], None) == "r9"
