"""The gateway helper script (services/drpoc-gw), run here with /bin/sh on what needs no strongSwan: its version, its
argument checks (every hostile name is refused before anything runs) and its health rule (`judge`) on every recorded
status output, held against the project's own parser. The verbs that act (down, up, the lock, the switch) are run
against the real lab in tests/lab/test_least_privilege.py and test_swanctl.py — never on this machine."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from drpoc_chaos.services import gateway_helper
from drpoc_chaos.vpn.status import parse_ipsec_statusall, parse_swanctl_list_sas

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HOSTILE = ["--help", "-h", "onprem-aws; rm -rf /", "$(id)", "`id`", "a b", "a\nb", "", "x" * 65, "../etc",
           "a'b", "a\"b", "a|b", "-+/etc/passwd", "\u043e\u043d\u043f\u0440\u0435\u043c"]


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("helper") / "drpoc-gw"
    path.write_text(gateway_helper.script_text())
    path.chmod(0o755)
    return path


def helper(script: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", str(script), *args], input=stdin, capture_output=True, text=True, timeout=10)


def test_version_is_the_one_python_expects(script):
    r = helper(script, "version")
    assert r.returncode == 0 and r.stdout.strip() == f"drpoc-gw {gateway_helper.HELPER_VERSION}"


def test_the_shipped_script_is_the_package_file():
    shipped = (Path(gateway_helper.__file__).parent / gateway_helper.SCRIPT_NAME).read_text()
    assert gateway_helper.script_text() == shipped and shipped.startswith("#!/bin/sh\n")


@pytest.mark.parametrize("bad", HOSTILE)
@pytest.mark.parametrize("verb, make_args", [
    ("detect", lambda b: [b]),
    ("down", lambda b: ["ipsec", b]),
    ("down", lambda b: ["swanctl", b]),
    ("up", lambda b: ["swanctl", b, "child"]),
    ("up", lambda b: ["swanctl", "conn", b]),
    ("healthy", lambda b: ["ipsec", b, "conn"]),
    ("judge", lambda b: ["swanctl", "conn", b]),
    ("lock-release", lambda b: [b]),
    ("deadman-arm", lambda b: ["ipsec", b, "conn", "60", "run1"]),
    ("deadman-arm", lambda b: ["ipsec", "conn", "conn", "60", b]),
    ("deadman-record", lambda b: [b]),
    ("deadman-forget", lambda b: [b]),
    ("deadman-disarm", lambda b: [b]),
    ("_deadman", lambda b: ["swanctl", "conn", b, "60", "run1"]),
    ("failover-record", lambda b: [b, "promoted", "0-1-5", "-"]),
    ("failover-forget", lambda b: [b]),
])
def test_hostile_names_are_refused_before_anything_runs(script, verb, make_args, bad):
    r = helper(script, verb, *make_args(bad))
    assert r.returncode == 2, (verb, bad, r.stdout, r.stderr)
    assert r.stderr.startswith("drpoc-gw: ") and "refused" in r.stderr and r.stdout == ""


@pytest.mark.parametrize("args, why", [
    (["status", "vici"], "control refused"),
    (["status", "--help"], "control refused"),
    (["down", "ipsec"], "wrong number of arguments"),
    (["down", "ipsec", "a", "b"], "wrong number of arguments"),
    (["up", "swanctl", "a", "b", "0"], "timeout refused"),
    (["up", "swanctl", "a", "b", "1e3"], "timeout refused"),
    (["deadman-arm", "ipsec", "a", "a", "86401", "r"], "seconds refused"),
    (["deadman-arm", "ipsec", "a", "a", "-5", "r"], "seconds refused"),
    (["lock-acquire", "run1", "600", "vpn_outage; id", "ops1"], "scenario refused"),
    (["lock-acquire", "run1", "600", "vpn_outage", "$(hostname)"], "controller refused"),
    (["lock-acquire", "run1", "600", 'a"b', "ops1"], "scenario refused"),
    (["shell"], "unknown verb"),
    ([], "unknown verb"),
    (["--help"], "unknown verb"),
])
def test_bad_arguments_get_a_clear_refusal(script, args, why):
    r = helper(script, *args)
    assert r.returncode == 2 and why in r.stderr and r.stdout == ""


def _status_fixtures():
    for path in sorted(FIXTURES.glob("strongswan-*/*.txt")):
        text = path.read_text(encoding="utf-8")
        if "statusall" in path.name:
            yield pytest.param("ipsec", parse_ipsec_statusall, text, id=path.name)
        elif "swanctl-list-sas" in path.name:
            yield pytest.param("swanctl", parse_swanctl_list_sas, text, id=path.name)


@pytest.mark.parametrize("control, parse, text", list(_status_fixtures()))
def test_the_switch_judges_every_recorded_output_as_the_parser_does(script, control, parse, text):
    """The dead-man's switch decides on the gateway alone, with awk; the drill decides with the Python parser. On
    every recorded output, for every IKE/CHILD name in it (and a few that are not), both must agree."""
    status = parse(text)
    pairs = {(sa.name, c.name) for sa in status.ike_sas for c in sa.children}
    pairs |= {(sa.name, sa.name) for sa in status.ike_sas}
    pairs |= {("nope", "nope")} | {(sa.name + "x", c.name) for sa in status.ike_sas for c in sa.children}
    assert pairs
    for ike, child in sorted(pairs):
        expected = "healthy" if status.tunnel_state(ike, child_name=child) == "up" else "unhealthy"
        r = helper(script, "judge", control, ike, child, stdin=text)
        assert r.returncode == 0 and r.stdout.strip() == expected, (ike, child)


def test_judge_compares_names_literally_not_as_patterns(script):
    up = (FIXTURES / "strongswan-5.9.8-lab-swanctl" / "swanctl-list-sas-aws-up.txt").read_text()
    assert helper(script, "judge", "swanctl", "onprem-aws", "onprem-aws-net", stdin=up).stdout.strip() == "healthy"
    for ike, child in [("onprem.aws", "onprem-aws-net"), ("onprem-aws", "onprem-aws.net"), ("onprem", "onprem-aws-net"),
                       ("onprem-aws", "onprem-aws"), ("onprem-aws-net", "onprem-aws-net")]:
        assert helper(script, "judge", "swanctl", ike, child, stdin=up).stdout.strip() == "unhealthy", (ike, child)
    statusall = (FIXTURES / "strongswan-5.9.8-lab" / "strongswan-5.9.8-statusall-aws-up.txt").read_text()
    assert helper(script, "judge", "ipsec", "onprem-aws", "onprem-aws", stdin=statusall).stdout.strip() == "healthy"
    for name in ("onprem.aws", "onprem", "prem-aws", "onprem-aws1"):
        assert helper(script, "judge", "ipsec", name, name, stdin=statusall).stdout.strip() == "unhealthy", name


@pytest.mark.parametrize("stderr, missing", [
    ("sudo: /usr/local/sbin/drpoc-gw: command not found\n", True),
    ("sh: 1: /usr/local/sbin/drpoc-gw: not found\n", True),
    ("bash: line 1: /usr/local/sbin/drpoc-gw: Permission denied\n", True),
    # strongSwan's own words when charon is not running: not a missing helper
    ("Error: connecting to 'default' URI failed: No such file or directory\n", False),
    ("connecting to 'unix:///var/run/charon.ctl' failed: No such file or directory\n", False),
    ("sudo: /usr/local/sbin/drpoc-gw2: command not found\n", False),  # another program
    ("", False),
])
def test_a_missing_helper_is_told_apart_from_a_missing_charon(stderr, missing):
    assert gateway_helper._missing(stderr, "/usr/local/sbin/drpoc-gw") is missing


@pytest.mark.parametrize("step, fork, settings", [
    ("Promoted", "0-1-5", "-"), ("promoted;id", "0-1-5", "-"), ("--help", "-", "-"), ("x" * 33, "-", "-"),
    ("", "-", "-"), ("promoted", "0-1-5;id", "-"), ("promoted", "$(id)", "-"), ("promoted", "0-1-5 1-2-3", "-"),
    ("promoted", "", "-"),
    ("promoted", "--help"[1:] + "x", "-"), ("promoted", "0" * 4001, "-"),
    ("promoted", "0-1-5", "retry=2;id"), ("promoted", "0-1-5", "retry=$(id)"), ("promoted", "0-1-5", "Retry=2"),
    ("promoted", "0-1-5", ""), ("promoted", "0-1-5", "r" * 201),
])
def test_failover_records_take_a_step_word_and_a_gtid_position_only(script, step, fork, settings):
    r = helper(script, "failover-record", "run1", step, fork, settings)
    assert r.returncode == 2 and r.stderr.startswith("drpoc-gw: ") and "recorded" not in r.stdout
