"""flows/prefect.yaml applied by Prefect's own `prefect deploy` (apply_deployments) against the test harness's API,
then read back through the Prefect client: every key of the file arrives, keys the project's own reader does not
look at (triggers, job_variables, pull) included, and applying twice changes nothing."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drpoc_chaos import scheduling as sch

pytestmark = pytest.mark.flows
REPO = Path(__file__).resolve().parents[2]
DEFAULT_PULL = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]


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
        assert str(d.id) == ids[name]
        assert len(d.schedules) == 1 and d.schedules[0].active and d.schedules[0].slug
        s = d.schedules[0].schedule
        assert (s.cron, s.timezone, s.day_or) == (cron, "UTC", day_or), name
        assert d.work_pool_name == "drpoc-pool" and d.work_queue_name == "default"
        assert d.global_concurrency_limit.limit == 1      # Prefect 3 keeps a deployment limit as a GCL
        assert d.concurrency_options.collision_strategy.value == "ENQUEUE"
        assert {k: d.parameters[k] for k in params} == params and d.parameters["max_lateness_seconds"] == 3600
        assert d.entrypoint.startswith("flows/drills.py:")
        assert d.pull_steps == DEFAULT_PULL              # Prefect's default: the directory it was deployed from
        assert "drpoc" in d.tags and d.description
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


def _test_copy(tmp_path: Path) -> Path:
    """flows/prefect.yaml with the weekly drill renamed (so the shared harness's real deployments are not
    touched) and given what the project's old hand-written applier dropped: a trigger, job_variables, a pull step."""
    data = yaml.safe_load((REPO / "flows" / "prefect.yaml").read_text())
    dep = next(d for d in data["deployments"] if d["name"] == "weekly-drill")
    dep = {**dep, "name": "copy-weekly-drill"}
    dep["work_pool"] = {**dep["work_pool"], "job_variables": {"env": {"DRPOC_COPY_TEST": "1"},
                                                              "stream_output": False}}
    dep["pull"] = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO / "flows")}}]
    dep["triggers"] = [{"type": "event", "enabled": True, "name": "copy-weekly-drill on drpoc.test.never",
                        "match": {"prefect.resource.id": "drpoc.test.never"}, "expect": ["drpoc.test.never"],
                        "parameters": {"archive_dir": "journal-from-trigger"}}]
    dep["schedules"] = [{"interval": 86400, "slug": "copy-daily"}, *dep["schedules"]]
    p = tmp_path / "prefect.yaml"
    p.write_text(yaml.safe_dump({**data, "deployments": [dep]}, sort_keys=False))
    return p


def _owned_automations(client, dep_id: str) -> list:
    return [a for a in client.read_resource_related_automations(f"prefect.deployment.{dep_id}")
            if not a.name.startswith("drpoc: ")]


def test_triggers_job_variables_and_pull_are_not_dropped_and_applying_twice_is_idempotent(prefect_client, tmp_path):
    pfile = _test_copy(tmp_path)
    specs = sch.load_deployment_specs(pfile)
    assert [s.name for s in specs] == ["copy-weekly-drill"] and specs[0].schedules[0]["interval"] == 86400
    ids = sch.apply_deployments(specs, repo=REPO)
    assert list(ids) == ["dr-drill/copy-weekly-drill"]
    dep_id = ids["dr-drill/copy-weekly-drill"]
    try:
        d = prefect_client.read_deployment_by_name("dr-drill/copy-weekly-drill")
        assert d.job_variables == {"env": {"DRPOC_COPY_TEST": "1"}, "stream_output": False}
        assert d.pull_steps == [{"prefect.deployments.steps.set_working_directory":
                                 {"directory": str(REPO / "flows")}}]
        assert sorted(s.slug for s in d.schedules) == ["copy-daily", "weekly-monday-0300-utc"]
        assert {s.slug: s.schedule.interval.total_seconds() for s in d.schedules
                if s.slug == "copy-daily"} == {"copy-daily": 86400}
        autos = _owned_automations(prefect_client, dep_id)
        assert [a.name for a in autos] == ["copy-weekly-drill on drpoc.test.never"]
        action = autos[0].actions[0]
        assert action.type == "run-deployment" and action.parameters == {"archive_dir": "journal-from-trigger"}
        assert autos[0].trigger.expect == {"drpoc.test.never"}

        # twice: same id, same schedules, the trigger replaced rather than added
        before = d.model_dump(include={"job_variables", "pull_steps", "parameters", "tags", "work_pool_name",
                                       "concurrency_limit"})
        assert sch.apply_deployments(specs, repo=REPO) == ids
        d2 = prefect_client.read_deployment_by_name("dr-drill/copy-weekly-drill")
        assert d2.model_dump(include=set(before)) == before
        assert sorted(s.slug for s in d2.schedules) == ["copy-daily", "weekly-monday-0300-utc"]
        assert [a.name for a in _owned_automations(prefect_client, dep_id)] == [
            "copy-weekly-drill on drpoc.test.never"]
    finally:
        for a in _owned_automations(prefect_client, dep_id):
            prefect_client.delete_automation(a.id)
        prefect_client.delete_deployment(dep_id)


def test_a_missing_work_pool_is_created_and_a_refused_file_says_why(prefect_client, tmp_path):
    from prefect.exceptions import ObjectNotFound
    data = yaml.safe_load(_test_copy(tmp_path).read_text())
    data["deployments"][0]["work_pool"]["name"] = "drpoc-copy-pool"
    data["deployments"][0].pop("triggers")
    p = tmp_path / "pool.yaml"
    p.write_text(yaml.safe_dump(data))
    ids = sch.apply_deployments(prefect_file=p, repo=REPO)
    try:
        assert prefect_client.read_work_pool("drpoc-copy-pool").type == "process"
    finally:
        prefect_client.delete_deployment(ids["dr-drill/copy-weekly-drill"])
        prefect_client.delete_work_pool("drpoc-copy-pool")
    with pytest.raises(ObjectNotFound):
        prefect_client.read_work_pool("drpoc-copy-pool")

    data["deployments"][0]["entrypoint"] = "flows/drills.py:no_such_flow"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(sch.SchedulingError, match="prefect --no-prompt deploy .* failed"):
        sch.apply_deployments(prefect_file=p, repo=REPO)


def test_flows_deploy_py_applies_the_file_and_prints_one_line_per_deployment(prefect_harness, capsys):
    import deploy  # flows/deploy.py (tests/flows/conftest.py puts flows/ on sys.path)
    assert deploy.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("dr-drill/weekly-drill  [0 3 * * 1 UTC]  pool drpoc-pool  id ")
