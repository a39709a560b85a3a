"""flows/prefect.yaml applied by flows/deploy.py's code against the test harness's API, then read back."""
from __future__ import annotations

from pathlib import Path

import pytest

from drpoc_chaos import scheduling as sch

pytestmark = pytest.mark.flows
REPO = Path(__file__).resolve().parents[2]


def test_deployments_exist_with_their_schedules_parameters_pool_and_concurrency(prefect_client):
    ids = sch.apply_deployments(sch.load_deployment_specs(REPO / "flows" / "prefect.yaml"), repo=REPO)
    assert set(ids) == {"dr-drill/weekly-drill", "steady-state-check/daily-steady-state",
                        "dr-drill/monthly-drill-under-load"}
    pool = prefect_client.read_work_pool("drpoc-pool")
    assert pool.type == "process"

    got = {name: prefect_client.read_deployment_by_name(name) for name in ids}
    expected = {
        "dr-drill/weekly-drill": ("0 3 * * 1", True, {"experiments": ["experiments/vpn_outage.yaml"]}),
        "steady-state-check/daily-steady-state": ("0 6 * * *", True, {"experiment": "experiments/vpn_outage.yaml"}),
        "dr-drill/monthly-drill-under-load": ("0 4 1-7 * 0", False,
                                              {"experiments": ["experiments/vpn_outage_under_load.yaml"]}),
    }
    for name, (cron, day_or, params) in expected.items():
        d = got[name]
        assert len(d.schedules) == 1 and d.schedules[0].active
        s = d.schedules[0].schedule
        assert (s.cron, s.timezone, s.day_or) == (cron, "UTC", day_or), name
        assert d.work_pool_name == "drpoc-pool" and d.work_queue_name == "default"
        assert d.global_concurrency_limit.limit == 1      # Prefect 3 keeps a deployment limit as a GCL
        assert d.concurrency_options.collision_strategy.value == "ENQUEUE"
        assert {k: d.parameters[k] for k in params} == params and d.parameters["max_lateness_seconds"] == 3600
        assert d.entrypoint.startswith("flows/drills.py:") and d.path == str(REPO)
        assert d.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
        assert d.enforce_parameter_schema
        props = d.parameter_openapi_schema["properties"]
        assert {"inventory", "var_file", "secret_env", "max_lateness_seconds", "timeout_seconds"} <= set(props)
    drill_props = got["dr-drill/weekly-drill"].parameter_openapi_schema["properties"]
    assert {"experiments", "objectives", "max_outage_seconds", "archive_dir"} <= set(drill_props)
    assert drill_props["experiments"]["default"] == ["experiments/vpn_outage.yaml"]

    # applying again updates in place (same ids, still one schedule each)
    again = sch.apply_deployments(sch.load_deployment_specs(REPO / "flows" / "prefect.yaml"), repo=REPO)
    assert again == ids
    assert all(len(prefect_client.read_deployment_by_name(n).schedules) == 1 for n in ids)
