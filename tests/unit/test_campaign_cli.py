"""`drpoc campaign run` refuses bad input before any server or site is touched (exit 2, one clear line)."""
from __future__ import annotations

import pytest
import yaml

from drpoc_chaos.cli import main
from drpoc_chaos.scheduling import campaign as sc

from .test_inventory_v2 import fleet_data


@pytest.fixture
def fleet_file(tmp_path, monkeypatch):
    monkeypatch.delenv("DRPOC_INVENTORY", raising=False)
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet_data()))
    return path


@pytest.mark.parametrize("args, words", [
    (["--selection", "count:99"], "holds only"),
    (["--selection", "list:nope"], "no pair 'nope'"),
    (["--selection", "percent:0"], "above 0"),
    (["--selection=--help;rm"], "is not all, count:N"),
    (["--max-parallel", "0"], "give 1 or more"),
])
def test_bad_campaign_input_exits_2_before_anything_runs(fleet_file, capsys, monkeypatch, args, words):
    # reaching the Prefect API would mean the input went through: make that fail loudly
    monkeypatch.setattr("drpoc_chaos.scheduling.cli.api_healthy", lambda *a, **k: pytest.fail("reached the API"))
    assert main(["campaign", "run", "--inventory", str(fleet_file), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("drpoc campaign run: ") and words in err and "Traceback" not in err


def test_a_missing_inventory_is_a_clear_error(tmp_path, capsys):
    assert main(["campaign", "run", "--inventory", str(tmp_path / "none.yaml")]) == 2
    assert "no inventory file" in capsys.readouterr().err


def test_pair_deployments_one_per_pool():
    text = sc.deployments_yaml(["drpoc-site-b", "drpoc-site-a", "drpoc-site-a"])
    doc = yaml.safe_load(text)
    assert [d["name"] for d in doc["deployments"]] == ["pair-drill-drpoc-site-a", "pair-drill-drpoc-site-b"]
    assert {d["entrypoint"] for d in doc["deployments"]} == {"flows/drills.py:dr_drill"}
    assert [d["work_pool"]["name"] for d in doc["deployments"]] == ["drpoc-site-a", "drpoc-site-b"]
    assert all("schedules" not in d for d in doc["deployments"])   # a campaign starts them


def test_campaign_files_are_written_atomically_under_campaigns(tmp_path):
    path = sc.write_campaign(tmp_path, {"campaign_id": "ab" * 16, "started": "2026-12-01T03:30:00.123Z"})
    assert path.parent == tmp_path / "campaigns" and path.name == "20261201T033000_abababab.json"
    assert not list((tmp_path / "campaigns").glob("*.tmp"))
