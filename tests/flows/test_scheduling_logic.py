"""The scheduling logic without Prefect and without the lab: command lines, verdicts, artifacts' content, the
late-run guard, the deployments file, the CLI helpers."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from drpoc_chaos import scheduling as sch
from drpoc_chaos.scheduling import cli as sch_cli
from drpoc_chaos.scheduling import server as sch_server

pytestmark = pytest.mark.flows
REPO = Path(__file__).resolve().parents[2]
JOURNALS = REPO / "tests" / "unit" / "journals"


def journal(name: str) -> dict:
    return json.loads((JOURNALS / f"{name}.json").read_text())


def passed_journal() -> dict:
    j = journal("drpoc1_vpn_outage_passed")
    j["drpoc"]["archived_as"] = "/srv/journal/20261129T170000Z_vpn_outage_2b0c1111.json"
    return j


# ---------------------------------------------------------------------------------------------- command line

def test_chaos_command_with_var_file_and_typed_overrides(tmp_path):
    cmd = sch.chaos_command("experiments/vpn_outage.yaml", tmp_path / "j.json", var_file="/etc/sites.yaml",
                            overrides={"objective_rto_seconds": 30, "max_outage_seconds": 90.5,
                                       "scenario": "weekly", "deadman": True, "skip": None}, chaos="chaos")
    assert cmd[:6] == ["chaos", "--no-version-check", "--no-log-file", "run", "--journal-path",
                       str(tmp_path / "j.json")]
    assert cmd[6:8] == ["--var-file", "/etc/sites.yaml"]
    assert cmd[8:] == ["--var", "objective_rto_seconds:int=30", "--var", "max_outage_seconds:float=90.5",
                       "--var", "scenario=weekly", "--var", "deadman=true", "experiments/vpn_outage.yaml"]


def test_tiny_float_objective_survives_the_command_line():
    assert sch.chaos_var_args({"objective_rto_seconds": 0.0001}) == ["--var", "objective_rto_seconds:float=0.0001"]


@pytest.mark.parametrize("bad", [{"rto; rm -rf /": 1}, {"x": [1, 2]}, {"x": float("nan")}])
def test_bad_overrides_are_refused(bad):
    with pytest.raises(ValueError):
        sch.chaos_var_args(bad)


def test_steady_state_check_command_skips_method_and_rollbacks(tmp_path):
    cmd = sch.chaos_command(tmp_path / "e.json", tmp_path / "j.json", chaos="chaos",
                            run_options=["--hypothesis-strategy", "before-method-only", "--rollback-strategy",
                                         "never"])
    assert cmd[6:10] == ["--hypothesis-strategy", "before-method-only", "--rollback-strategy", "never"]


def test_drill_env_sets_inventory_archive_and_secrets_only_there(tmp_path):
    base = {"PATH": "/usr/bin"}
    env = sch.drill_env(base, inventory="inv.yaml", archive_dir="journal",
                        secret_values={"DRPOC_MYSQL_PASSWORD": "s3cr3t"})
    assert env["DRPOC_INVENTORY"] == str(Path("inv.yaml").absolute())
    assert env["DRPOC_ARCHIVE_DIR"] == str(Path("journal").absolute())
    assert env["DRPOC_MYSQL_PASSWORD"] == "s3cr3t" and base == {"PATH": "/usr/bin"}
    assert "DRPOC_INVENTORY" not in sch.drill_env(base)          # None: the default resolution
    with pytest.raises(ValueError):
        sch.drill_env(base, secret_values={"NOT A NAME": "x"})


def test_redaction_of_logged_output():
    assert sch.redact_text("password=s3cr3t!", ["s3cr3t!"]) == "password=***"


def test_missing_var_file_is_refused_not_ignored(tmp_path):
    # chaos itself only logs a missing --var-file and runs with the defaults: against the lab, not the real sites
    with pytest.raises(sch.SchedulingError, match="does not exist"):
        sch.check_var_file(tmp_path / "nope.yaml")


def test_run_drill_reports_a_missing_experiment_without_raising(tmp_path):
    r = sch.run_drill(tmp_path / "nope.yaml", archive_dir=tmp_path)
    assert not r.passed and r.status == "error" and "does not exist" in r.reasons[0]


# ---------------------------------------------------------------------------------------------- verdicts

def test_a_passed_archived_drill_passes():
    r = sch.evaluate_drill(passed_journal(), 0, experiment="experiments/vpn_outage.yaml")
    assert r.passed and r.status == "passed" and r.reasons == []
    assert r.run_id and r.archived_as.endswith(".json") and r.writes["acknowledged"] == 60


def test_an_unarchived_journal_is_not_a_pass():
    j = passed_journal()
    del j["drpoc"]["archived_as"]
    r = sch.evaluate_drill(j, 0, experiment="e")
    assert not r.passed and r.reasons == ["the journal was not archived (see the chaos output)"]


@pytest.mark.parametrize("name,status,expected", [
    ("drpoc1_vpn_outage_deviated_lost_writes", "failed", "acknowledged writes lost"),
    ("drpoc1_vpn_outage_precondition_failed", "precondition-failed", "steady state not met"),
    ("drpoc1_vpn_outage_interrupted", "aborted", "interrupted"),
])
def test_the_verdicts_reasons_explain_a_failed_drill(name, status, expected):
    j = journal(name)
    j["drpoc"]["archived_as"] = "/srv/journal/x.json"
    r = sch.evaluate_drill(j, 1, experiment="e")
    assert not r.passed and r.status == status
    assert r.reasons == j["drpoc"]["verdict"]["reasons"] and expected in " ".join(r.reasons)


@pytest.mark.parametrize("tamper,expected", [
    (lambda j: j.update(deviated=True), "steady state deviated after the method"),
    (lambda j: j.update(status="failed"), "the Chaos Toolkit run ended 'failed'"),
    (lambda j: j["steady_states"]["before"].update(steady_state_met=False), "steady state not met before"),
    (lambda j: j["drpoc"]["writes"].update(lost=["drpoc:x:7"]), "1 acknowledged write(s) missing on the replica"),
    (lambda j: j["drpoc"]["objective_results"].append(
        {"name": "rto_seconds", "label": "RTO (s)", "objective": 0.0001, "achieved": 12.8, "passed": False}),
     "objective missed: RTO (s): achieved 12.8 > objective 0.0001"),
    (lambda j: j["drpoc"]["objective_results"].append(
        {"name": "detection_seconds", "objective": 5, "achieved": None, "passed": False}),
     "objective not measured: detection_seconds"),
])
def test_a_pass_that_contradicts_the_journal_is_not_a_pass(tamper, expected):
    j = passed_journal()
    tamper(j)
    r = sch.evaluate_drill(j, 0, experiment="e")
    assert not r.passed and r.status == "failed"
    assert any(expected in reason for reason in r.reasons), r.reasons


def test_no_journal_no_verdict_and_nonzero_exit():
    r = sch.evaluate_drill(None, 1, experiment="e", problem="the run exceeded timeout_seconds=5")
    assert not r.passed and r.status == "error" and r.reasons[0].startswith("the run exceeded")
    r = sch.evaluate_drill(journal("chaostoolkit_generic_no_drpoc"), 0, experiment="e")
    assert not r.passed and "no drpoc verdict" in r.reasons[0]
    r = sch.evaluate_drill(passed_journal(), 1, experiment="e")
    assert not r.passed and r.reasons == ["chaos exited with code 1"]


def test_failure_message_lists_each_failed_drill_and_its_reasons():
    ok = sch.evaluate_drill(passed_journal(), 0, experiment="experiments/vpn_outage.yaml")
    bad = sch.DrillResult(experiment="experiments/vpn_outage_under_load.yaml", passed=False, status="failed",
                          run_id="abcdef0123", reasons=["objective missed: RTO", "1 write lost"])
    msg = sch.failure_message([ok, bad])
    assert msg.splitlines() == ["1 drill(s) did not pass:", "- vpn_outage_under_load.yaml [failed] run abcdef01",
                                "    - objective missed: RTO", "    - 1 write lost"]


def test_artifact_contents():
    r = sch.evaluate_drill(passed_journal(), 0, experiment="experiments/vpn_outage.yaml")
    md = sch.drill_markdown(r)
    assert "# DR drill PASSED: vpn_outage.yaml" in md and "**passed**" in md
    assert "](file:///srv/journal/20261129T170000Z_vpn_outage_2b0c1111.json)" in md
    assert "## DR metrics vs objectives" in md and "| rto_seconds | 12.82 | 60 | yes |" in md
    rows = sch.metrics_table(r)
    assert rows[0] == {"metric": "rpo_seconds", "achieved": 0.0, "objective": 0, "passed": True}
    by_name = {row["metric"]: row for row in rows}
    assert by_name["replication_latency_seconds.p95"]["achieved"] == 7.51
    assert by_name["lost_writes"] == {"metric": "lost_writes", "achieved": 0, "objective": None, "passed": None}
    assert sch.file_url("/srv/journal/a b.json") == "file:///srv/journal/a%20b.json"


# ---------------------------------------------------------------------------------------------- steady state

def test_steady_state_experiment_has_no_method_rollbacks_or_drill_control():
    exp = yaml.safe_load((REPO / "experiments" / "vpn_outage.yaml").read_text())
    reduced = sch.steady_state_experiment(exp)
    assert reduced["method"] == [] and "rollbacks" not in reduced and "controls" not in reduced
    assert reduced["steady-state-hypothesis"] == exp["steady-state-hypothesis"]
    assert reduced["configuration"] == exp["configuration"] and exp["method"]   # the original is untouched
    other = {"name": "x", "provider": {"type": "python", "module": "some.other.control"}}
    kept = sch.steady_state_experiment({**exp, "controls": exp["controls"] + [other]})
    assert kept["controls"] == [other]
    with pytest.raises(ValueError):
        sch.steady_state_experiment({"title": "t", "method": []})


def _probe(name, status="succeeded", output=True, met=True, exception=None):
    p = {"activity": {"name": name, "tolerance": True}, "status": status, "output": output, "tolerance_met": met}
    if exception:
        p["exception"] = exception
    return p


def test_steady_state_verdict_names_the_failing_probe_and_what_was_not_checked():
    hypo = {"probes": [{"name": n} for n in ("aws-tunnel", "onprem-tunnel", "replica-threads")]}
    ok = {"status": "completed", "steady_states": {"before": {"steady_state_met": True, "probes": [
        _probe("aws-tunnel"), _probe("onprem-tunnel"), _probe("replica-threads")]}}}
    r = sch.evaluate_steady_state(ok, 0, experiment="e", hypothesis=hypo)
    assert r.healthy and r.problems == [] and [p["ok"] for p in r.probes] == [True, True, True]
    down = {"status": "completed", "steady_states": {"before": {"steady_state_met": False, "probes": [
        _probe("aws-tunnel", output=False, met=False)]}}}
    r = sch.evaluate_steady_state(down, 0, experiment="e", hypothesis=hypo)
    assert not r.healthy and r.problems == ["aws-tunnel: returned False, expected True"]
    assert [p["ok"] for p in r.probes] == [False, None, None]
    md = sch.steady_state_markdown(r)
    assert "# DR posture BROKEN" in md and "| aws-tunnel | **FAILED** |" in md and "not checked" in md
    crashed = {"status": "completed", "steady_states": {"before": {"steady_state_met": False, "probes": [
        _probe("aws-tunnel", status="failed", output=None, met=False,
               exception=["Traceback…\n", "RemoteError: ssh to aws-vpn: connection refused\n"])]}}}
    r = sch.evaluate_steady_state(crashed, 0, experiment="e", hypothesis=hypo)
    assert r.problems == ["aws-tunnel: RemoteError: ssh to aws-vpn: connection refused"]
    assert not sch.evaluate_steady_state(None, 1, experiment="e").healthy


# ---------------------------------------------------------------------------------------------- late runs

NOW = datetime(2026, 11, 30, 5, 0, tzinfo=timezone.utc)


def test_late_guard_skips_a_run_scheduled_too_long_ago():
    reason = sch.late_skip_reason(NOW - timedelta(hours=2), NOW, 3600)
    assert reason.startswith("skipped: late by 7200 s") and "max_lateness_seconds=3600" in reason


@pytest.mark.parametrize("scheduled,bound", [
    (NOW - timedelta(minutes=59), 3600),       # late, but within the window
    (NOW + timedelta(seconds=5), 3600),        # early
    (NOW - timedelta(days=3), None),           # guard disabled
    (NOW - timedelta(days=3), 0),
    (None, 3600),                              # not known: run
])
def test_late_guard_lets_these_run(scheduled, bound):
    assert sch.late_skip_reason(scheduled, NOW, bound) is None


def test_late_guard_takes_naive_times_as_utc():
    assert sch.lateness_seconds(datetime(2026, 11, 30, 4, 0), NOW) == 3600


# ---------------------------------------------------------------------------------------------- deployments file

def test_prefect_yaml_defines_the_three_deployments():
    specs = {s.name: s for s in sch.load_deployment_specs(REPO / "flows" / "prefect.yaml")}
    assert set(specs) == {"weekly-drill", "daily-steady-state", "monthly-drill-under-load"}
    for s in specs.values():
        assert s.work_pool == "drpoc-pool" and s.concurrency_limit == 1 and s.collision_strategy == "ENQUEUE"
        assert (REPO / s.entrypoint.split(":")[0]).exists()
        assert s.parameters["max_lateness_seconds"] == 3600
    assert specs["weekly-drill"].parameters["experiments"] == ["experiments/vpn_outage.yaml"]
    assert specs["monthly-drill-under-load"].parameters["experiments"] == ["experiments/vpn_outage_under_load.yaml"]
    assert (REPO / "experiments" / "vpn_outage_under_load.yaml").exists()
    assert specs["daily-steady-state"].entrypoint == "flows/drills.py:steady_state_check"


def test_schedules_fire_when_intended():
    specs = {s.name: s for s in sch.load_deployment_specs()}
    after = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)          # a Sunday
    w = specs["weekly-drill"].schedules[0]
    weekly = sch.next_fire_times(w["cron"], w["timezone"], w["day_or"], n=3, after=after)
    assert all(t.weekday() == 0 and (t.hour, t.minute) == (3, 0) for t in weekly)
    assert [t.day for t in weekly] == [30, 7, 14]
    d = specs["daily-steady-state"].schedules[0]
    daily = sch.next_fire_times(d["cron"], d["timezone"], d["day_or"], n=3, after=after)
    assert [(t.day, t.hour) for t in daily] == [(30, 6), (1, 6), (2, 6)]
    m = specs["monthly-drill-under-load"].schedules[0]
    monthly = sch.next_fire_times(m["cron"], m["timezone"], m["day_or"], n=4, after=after)
    # the first Sunday of each month, once a month: day_or false makes "1-7" AND "Sunday"
    assert [t.date().isoformat() for t in monthly] == ["2026-12-06", "2027-01-03", "2027-02-07", "2027-03-07"]
    assert all(t.weekday() == 6 and t.day <= 7 and t.hour == 4 for t in monthly)
    # what standard cron OR semantics would have done: every day 1-7 plus every Sunday
    ored = sch.next_fire_times(m["cron"], m["timezone"], True, n=4, after=after)
    assert [t.day for t in ored] == [1, 2, 3, 4]


def test_deployments_file_refuses_what_prefect_could_not_run(tmp_path):
    p = tmp_path / "prefect.yaml"
    base = {"name": "x", "entrypoint": "flows/drills.py:dr_drill", "work_pool": {"name": "p"}}
    p.write_text(yaml.safe_dump({"deployments": [{**base, "schedules": [{"timezone": "UTC"}]}]}))
    with pytest.raises(ValueError, match="one of cron, interval or rrule"):
        sch.load_deployment_specs(p)
    p.write_text(yaml.safe_dump({"deployments": [{"name": "x", "entrypoint": "flows/drills.py:dr_drill"}]}))
    with pytest.raises(ValueError, match="work_pool.name"):
        sch.load_deployment_specs(p)


def test_deployments_file_reads_what_prefect_applies_and_keeps_the_rest_for_prefect(tmp_path):
    """Interval and rrule schedules are read (the alerts' absence window uses them); triggers, pull and
    job_variables are not refused: `prefect deploy` applies them (tests/flows/test_deployments.py)."""
    p = tmp_path / "prefect.yaml"
    p.write_text(yaml.safe_dump({"deployments": [{
        "name": "x", "entrypoint": "flows/drills.py:dr_drill",
        "work_pool": {"name": "p", "job_variables": {"env": {"A": "1"}}},
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "/srv"}}],
        "triggers": [{"type": "event", "expect": ["x.y"]}],
        "schedules": [{"interval": 600}, {"rrule": "FREQ=WEEKLY;BYDAY=MO", "timezone": "Europe/Paris"}]}]}))
    (spec,) = sch.load_deployment_specs(p)
    assert spec.schedules == [{"interval": 600, "timezone": "UTC", "active": True},
                              {"rrule": "FREQ=WEEKLY;BYDAY=MO", "timezone": "Europe/Paris", "active": True}]
    assert spec.prefect_file == p
    assert sch.deployment_lines([spec], {"dr-drill/x": "id1"}) == [
        "dr-drill/x  [every 600 s UTC, FREQ=WEEKLY;BYDAY=MO Europe/Paris]  pool p  id id1"]


def test_prefect_deploy_command_is_prefects_own_non_interactive_deploy(tmp_path):
    cmd = sch.prefect_deploy_command(tmp_path / "prefect.yaml")
    assert Path(cmd[0]).name == "prefect"
    assert cmd[1:] == ["--no-prompt", "deploy", "--prefect-file", str(tmp_path / "prefect.yaml"), "--all"]
    assert sch.prefect_deploy_command(tmp_path / "p.yaml", ["a", "b"])[-4:] == ["--name", "a", "--name", "b"]


# ---------------------------------------------------------------------------------------------- CLI helpers

def cli() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drpoc")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sch.add_schedule_parser(sub)
    sch.add_drill_parser(sub)
    return parser


def test_cli_helpers_mount_and_parse():
    a = cli().parse_args(["schedule", "up", "--port", "4300"])
    assert a.func is sch_cli._cmd_schedule_up and a.port == 4300 and not a.no_worker
    assert cli().parse_args(["schedule", "down"]).func is sch_cli._cmd_schedule_down
    assert cli().parse_args(["schedule", "status", "--json"]).json
    a = cli().parse_args(["drill", "now", "--wait", "--param", 'objectives={"objective_rto_seconds": 30}',
                          "--param", "archive_dir=/tmp/j"])
    assert a.func is sch_cli._cmd_drill_now and a.deployment == "dr-drill/weekly-drill" and a.wait
    assert dict(a.param) == {"objectives": {"objective_rto_seconds": 30}, "archive_dir": "/tmp/j"}


def test_schedule_up_says_when_the_port_is_taken(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(sch.SchedulingError, match=f"port {port} on 127.0.0.1 is taken by another process"):
            sch.schedule_up(port=port, state_dir=tmp_path, out=lambda m: None)


def test_drill_now_without_a_server_says_so(tmp_path):
    with pytest.raises(sch.SchedulingError, match="no Prefect API at http://127.0.0.1:9/api"):
        sch.drill_now(api_url="http://127.0.0.1:9/api", state_dir=tmp_path, out=lambda m: None)


def test_schedule_down_with_nothing_running(tmp_path):
    msgs = []
    assert sch.schedule_down(state_dir=tmp_path, out=msgs.append) == {"worker": "not recorded",
                                                                      "server": "not recorded"}
    assert msgs == ["the scheduler was not running"]


def test_a_recycled_pid_is_not_ours(tmp_path):
    import os
    paths = sch.SchedulerPaths(tmp_path)
    paths.pids.mkdir()
    paths.pid_file("server").write_text(json.dumps({"pid": os.getpid(), "start_time": 1}))
    assert not sch.record_alive(sch.read_record(paths, "server"))
    paths.pid_file("server").write_text(json.dumps({"pid": os.getpid(),
                                                    "start_time": sch_server._proc_start_time(os.getpid())}))
    assert sch.record_alive(sch.read_record(paths, "server"))


# ---------------------------------------------------------------------------------------------- the subprocess

def test_run_chaos_streams_redacted_output_and_interrupts_a_run_that_overstays(tmp_path):
    """After the timeout the run gets SIGINT (so the drill control can restore and archive), not SIGKILL."""
    script = tmp_path / "fake_chaos.py"
    script.write_text(
        "import signal, sys, time\n"
        "def bye(*_):\n"
        "    print('restoring the tunnel', flush=True); sys.exit(130)\n"
        "signal.signal(signal.SIGINT, bye)\n"
        "print('\\x1b[32mconnecting with password hunter2\\x1b[0m', flush=True)\n"
        "time.sleep(30)\n")
    lines: list[str] = []
    code, tail, problem = sch.run_chaos([sys.executable, str(script)], env={"PATH": "/usr/bin:/bin"}, timeout=2,
                                        log=lines.append, secrets=["hunter2"], grace=10)
    assert code == 130 and problem == "the run exceeded timeout_seconds=2: interrupted (SIGINT)"
    assert lines == ["connecting with password ***", "restoring the tunnel"] and "hunter2" not in tail


def test_run_chaos_escalates_when_sigint_is_ignored(tmp_path):
    script = tmp_path / "stubborn.py"
    script.write_text("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(30)\n")
    code, _, problem = sch.run_chaos([sys.executable, str(script)], env={}, timeout=1, grace=1)
    assert code == -15 and problem.endswith("still running 1 s later: SIGTERM")
