"""The lab's checks before it touches anything: each problem names what is wrong and the fix."""
from __future__ import annotations

import socket

import pytest

from drpoc_chaos import ports
from drpoc_chaos.lab import system, topology


def test_missing_package_names_it_and_the_install_command(monkeypatch):
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    monkeypatch.setattr(system, "which", lambda b: None if b in ("ipsec", "mariadbd") else f"/usr/bin/{b}")
    problems = [str(p) for p in system.preflight([])]
    assert any("strongswan-starter" in p and "mariadb-server" in p and "apt-get install -y" in p for p in problems)


def test_not_root_is_the_only_problem_reported(monkeypatch):
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    problems = system.preflight([1])
    assert len(problems) == 1 and "not running as root" in str(problems[0])


def test_missing_tun(monkeypatch):
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    monkeypatch.setattr(system, "which", lambda b: "/bin/true")
    real_exists = system.os.path.exists
    monkeypatch.setattr(system.os.path, "exists", lambda p: False if p == "/dev/net/tun" else real_exists(p))
    assert any("TUN" in str(p) for p in system.preflight([]))


def test_taken_port_is_reported_but_time_wait_is_not(monkeypatch):
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    monkeypatch.setattr(system, "which", lambda b: "/bin/true")
    monkeypatch.setattr(system.os.path, "exists", lambda p: True)
    monkeypatch.setattr(system, "ephemeral_ports_at_risk", lambda ports: ([], None))  # the listener's port is one
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        problems = [str(p) for p in system.preflight([port])]
        assert any(f"127.0.0.1:{port} is already taken" in p for p in problems)
        assert system.preflight([port], our_ports=[port]) == []  # a running lab's own port
    finally:
        listener.close()
    assert not system.port_in_use(port)


def test_run_error_names_the_command():
    try:
        system.run(["sh", "-c", "echo boom >&2; exit 3"], what="lab host aws-vpn")
    except system.LabError as exc:
        assert "lab host aws-vpn" in str(exc) and "exited 3" in str(exc) and "boom" in str(exc)
    else:
        raise AssertionError("no error")


def _ready_machine(monkeypatch):
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    monkeypatch.setattr(system, "which", lambda b: "/bin/true")
    monkeypatch.setattr(system.os.path, "exists", lambda p: True)
    monkeypatch.setattr(system, "port_in_use", lambda port: False)


def _kernel_ports(monkeypatch, tmp_path, port_range: str, reserved: str) -> None:
    (tmp_path / "range").write_text(port_range)
    (tmp_path / "reserved").write_text(reserved)
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE_FILE", str(tmp_path / "range"))
    monkeypatch.setattr(ports, "RESERVED_PORTS_FILE", str(tmp_path / "reserved"))


def test_ports_in_the_ephemeral_range_are_refused_with_both_fixes(monkeypatch, tmp_path):
    # an outgoing connection may hold such a port at any moment: CI once found 33062 taken for a whole run
    _ready_machine(monkeypatch)
    _kernel_ports(monkeypatch, tmp_path, "32768\t60999\n", "\n")
    problems = [str(p) for p in system.preflight([2201, 2202, 33061, 33062, 33063])]
    assert len(problems) == 1
    assert "ports 33061-33063 lie in this machine's ephemeral port range 32768-60999" in problems[0]
    assert "DRPOC_LAB_MYSQL_PORT_BASE" in problems[0] and "add 33061-33063 to net.ipv4.ip_local_reserved_ports" \
        in problems[0]
    assert system.preflight([2201, 2202, 13306, 13307]) == []


def test_reserved_ports_and_another_range_are_honoured(monkeypatch, tmp_path):
    _ready_machine(monkeypatch)
    _kernel_ports(monkeypatch, tmp_path, "32768 60999", "8080,33061-33062\n")
    assert [str(p) for p in system.preflight([33061, 33062])] == []
    problems = [str(p) for p in system.preflight([33061, 33062, 33064])]
    assert len(problems) == 1 and "ports 33064 lie" in problems[0]
    _kernel_ports(monkeypatch, tmp_path, "49152 65535", "")
    assert system.preflight([33061, 33062, 33064]) == []
    assert "ports 50000 lie" in str(system.preflight([50000])[0])


def test_unreadable_kernel_files_refuse_nothing(monkeypatch, tmp_path):
    _ready_machine(monkeypatch)
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE_FILE", str(tmp_path / "absent"))
    assert system.preflight([33061]) == []
    _kernel_ports(monkeypatch, tmp_path, "garbage", "")
    assert system.preflight([33061]) == []


@pytest.mark.parametrize(("text", "want"), [
    ("32768\t60999\n", (32768, 60999)), ("1024 1024", (1024, 1024)), ("60999 32768", None), ("", None),
    ("1 2 3", None), ("a b", None)])
def test_parse_port_range(text, want):
    assert ports.parse_port_range(text) == want


@pytest.mark.parametrize(("text", "want"), [
    ("", set()), ("\n", set()), ("8080", {8080}), ("8080,9000-9002\n", {8080, 9000, 9001, 9002}),
    ("x,7-,5", {5})])
def test_parse_port_list(text, want):
    assert ports.parse_port_list(text) == want


def test_port_spans_read_as_sysctl_writes_them():
    assert system._spans([13308, 2201, 13306, 13307, 2203]) == "2201, 2203, 13306-13308"
    assert system._spans([5, 6], sep=",") == "5-6"


@pytest.mark.parametrize("raw", ["abc", "-5", "80", "70000", "65535", "2201; rm -rf /", ""])
def test_a_bad_port_base_is_a_preflight_problem_not_a_traceback(monkeypatch, raw):
    monkeypatch.setattr(topology, "PORT_SETTING_PROBLEMS", [])
    monkeypatch.setenv("DRPOC_LAB_MYSQL_PORT_BASE", raw)
    assert topology._port("DRPOC_LAB_MYSQL_PORT_BASE", 13306) == 13306  # the default, until the problem is fixed
    [(what, fix)] = topology.PORT_SETTING_PROBLEMS
    assert what.startswith("DRPOC_LAB_MYSQL_PORT_BASE=") and "is not a usable port base" in what
    assert "1024 to 65501" in fix and "default 13306" in fix
    _ready_machine(monkeypatch)
    problems = [str(p) for p in system.preflight([], port_setting_problems=topology.PORT_SETTING_PROBLEMS)]
    assert len(problems) == 1 and "DRPOC_LAB_MYSQL_PORT_BASE" in problems[0]


def test_a_good_port_base_is_used(monkeypatch):
    monkeypatch.setattr(topology, "PORT_SETTING_PROBLEMS", [])
    monkeypatch.setenv("DRPOC_LAB_SSH_PORT_BASE", " 12201 ")
    assert topology._port("DRPOC_LAB_SSH_PORT_BASE", 2201) == 12201 and topology.PORT_SETTING_PROBLEMS == []
    monkeypatch.delenv("DRPOC_LAB_SSH_PORT_BASE")
    assert topology._port("DRPOC_LAB_SSH_PORT_BASE", 2201) == 2201


def test_default_ports_of_the_largest_fleet_lab_are_below_the_usual_ephemeral_range():
    ports_used = [p for p, _, _ in topology.build_topology(topology.MAX_SITES).published_ports()]
    if topology.SSH_PORT_BASE == 2201 and topology.MYSQL_PORT_BASE == 13306:
        assert max(ports_used) < 32768 and min(ports_used) >= 1024
