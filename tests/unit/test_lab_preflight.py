"""The lab's checks before it touches anything: each problem names what is wrong and the fix."""
from __future__ import annotations

import socket

from drpoc_chaos.lab import system


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
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        problems = [str(p) for p in system.preflight([port])]
        assert any(f"127.0.0.1:{port} is already taken" in p for p in problems)
        assert system.preflight([port], our_ports_in_use=True) == []
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
