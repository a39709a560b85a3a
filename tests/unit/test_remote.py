"""remote.py: run(), sudo, timeouts, pooling and reconnects on a scripted fake; host keys, authentication,
connect failures, jump hosts and tunnels against a throwaway paramiko server on 127.0.0.1."""
from __future__ import annotations

import logging
import socket
import threading
import time

import paramiko
import pytest

from drpoc_chaos import remote
from drpoc_chaos.inventory import SshHost
from drpoc_chaos.remote import RemoteError, SshPool, open_tunnel, run

from .fakessh import Command, FakeSsh, TinySshd, ed25519


def make_host(**overrides) -> SshHost:
    values = dict(name="aws-vpn", address="127.0.0.1", port=2201, user="drpoc", sudo=True, key_file=None,
                  known_hosts=None, connect_timeout=5.0, command_timeout=30.0, jump=None)
    values.update(overrides)
    return SshHost(**values)


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch):
    # a developer's ssh-agent must not change what these tests see
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture
def fake():
    with FakeSsh() as f:
        yield f


def fake_pool(f: FakeSsh, **kwargs) -> SshPool:
    return SshPool(client_factory=f.client, user_known_hosts=None, **kwargs)


# ==============================================================================================================
# the scripted fake


def test_output_and_exit_status_are_captured():
    with FakeSsh(Command("ipsec statusall", out="Security Associations (1 up)\n", err="warning\n", exit=3)) as f:
        result = run(make_host(), "ipsec statusall", pool=fake_pool(f))
    assert (result.host, result.command, result.exit_status) == ("aws-vpn", "ipsec statusall", 3)
    assert result.stdout == "Security Associations (1 up)\n" and result.stderr == "warning\n"
    assert result.duration >= 0 and not result.ok


def test_list_commands_are_quoted():
    with FakeSsh(Command("ipsec down 'onprem aws'")) as f:
        assert run(make_host(), ["ipsec", "down", "onprem aws"], pool=fake_pool(f)).ok


def test_large_output_is_read_whole():
    out, err = b"o" * 1_000_003, b"e" * 700_001
    with FakeSsh(Command("dump", out=out, err=err)) as f:
        result = run(make_host(), "dump", pool=fake_pool(f))
    assert (len(result.stdout), len(result.stderr)) == (len(out), len(err))


@pytest.mark.parametrize("host_sudo, sudo, sent", [
    (True, True, "sudo -n ipsec down onprem-aws"),
    (False, True, "ipsec down onprem-aws"),  # logged in as root
    (True, False, "ipsec down onprem-aws"),
])
def test_sudo_prefix(host_sudo, sudo, sent):
    with FakeSsh(Command(sent)) as f:
        result = run(make_host(sudo=host_sudo), "ipsec down onprem-aws", sudo=sudo, pool=fake_pool(f))
    assert result.command == sent


@pytest.mark.parametrize("stderr", ["sudo: a password is required\n",
                                    "sudo: a terminal is required to read the password; either use the -S option "
                                    "to read from standard input or configure an askpass helper\n"])
def test_sudo_password_prompt_is_an_error_with_the_fix(stderr):
    with FakeSsh(Command("sudo -n ipsec statusall", err=stderr, exit=1)) as f:
        with pytest.raises(RemoteError) as caught:
            run(make_host(), ["ipsec", "statusall"], sudo=True, pool=fake_pool(f))
    error = caught.value
    assert (error.host, error.command) == ("aws-vpn", "sudo -n ipsec statusall")
    assert "sudo on aws-vpn asks for a password: give drpoc passwordless sudo for `ipsec statusall` " \
           "(sudo -n failed)" in str(error)
    assert error.result.exit_status == 1


def test_sudo_refusal_is_an_error_with_the_fix():
    err = "Sorry, user drpoc is not allowed to execute '/usr/sbin/ipsec down x' as root on aws-vpn.\n"
    with FakeSsh(Command("sudo -n ipsec down x", err=err, exit=1)) as f:
        with pytest.raises(RemoteError, match="sudo on aws-vpn refuses `ipsec down x` for drpoc"):
            run(make_host(), "ipsec down x", sudo=True, pool=fake_pool(f))


def test_nonzero_exit_is_returned_unless_check():
    with FakeSsh(Command("ipsec up x", err="peer not responding\n", exit=1),
                 Command("ipsec up x", err="establishing CHILD_SA failed\n", exit=1)) as f:
        pool = fake_pool(f)
        assert run(make_host(), "ipsec up x", pool=pool).exit_status == 1
        with pytest.raises(RemoteError) as caught:
            run(make_host(), "ipsec up x", check=True, pool=pool)
    assert "aws-vpn: `ipsec up x` exited with 1: establishing CHILD_SA failed" in str(caught.value)
    assert caught.value.result.stderr == "establishing CHILD_SA failed\n"


def test_command_timeout_closes_the_channel():
    with FakeSsh(Command("ipsec statusall", hang=True)) as f:
        with pytest.raises(RemoteError) as caught:
            run(make_host(), "ipsec statusall", timeout=0.3, pool=fake_pool(f))
        assert f.channels[-1].closed
    assert "aws-vpn: `ipsec statusall` timed out after 0.3s" in str(caught.value)
    assert caught.value.command == "ipsec statusall"


def test_command_timeout_defaults_to_the_hosts():
    with FakeSsh(Command("sleep", hang=True)) as f:
        with pytest.raises(RemoteError, match="timed out after 0.2s"):
            run(make_host(command_timeout=0.2), "sleep", pool=fake_pool(f))


def test_slow_command_within_the_timeout():
    with FakeSsh(Command("slow", out="done\n", delay=0.3)) as f:
        assert run(make_host(), "slow", timeout=5, pool=fake_pool(f)).stdout == "done\n"


def test_one_connection_for_many_commands():
    with FakeSsh(Command("a"), Command("b"), Command("c")) as f:
        pool = fake_pool(f)
        for cmd in "abc":
            run(make_host(), cmd, pool=pool)
    assert len(f.connects) == 1 and pool.connects == 1


def test_one_connection_for_many_threads():
    commands = [Command(f"probe {i}") for i in range(16)]
    with FakeSsh(*commands, ordered=False) as f:
        pool = fake_pool(f)
        errors = []

        def work(i):
            try:
                run(make_host(), f"probe {i}", pool=pool)
            except Exception as exc:  # collected for the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and len(f.connects) == 1


def test_hosts_are_pooled_separately():
    with FakeSsh(Command("x", host="127.0.0.1:2201"), Command("x", host="127.0.0.1:2203")) as f:
        pool = fake_pool(f)
        run(make_host(), "x", pool=pool)
        run(make_host(name="onprem-vpn", port=2203), "x", pool=pool)
    assert [(c.hostname, c.port) for c in f.connects] == [("127.0.0.1", 2201), ("127.0.0.1", 2203)]


def test_reconnects_when_the_transport_died():
    with FakeSsh(Command("a"), Command("b")) as f:
        pool = fake_pool(f)
        run(make_host(), "a", pool=pool)
        f.kill_transports()
        run(make_host(), "b", pool=pool)
    assert len(f.connects) == 2 and f.clients[0].closed


def test_reconnects_once_when_a_live_looking_transport_fails():
    with FakeSsh(Command("a"), Command("b")) as f:
        pool = fake_pool(f)
        run(make_host(), "a", pool=pool)
        f.fail_sessions(1)
        run(make_host(), "b", pool=pool)
    assert len(f.connects) == 2


def test_gives_up_after_one_reconnect():
    with FakeSsh() as f:
        pool = fake_pool(f)
        f.fail_sessions(2)
        with pytest.raises(RemoteError, match=r"aws-vpn \[127.0.0.1\]:2201: cannot start `uptime`"):
            run(make_host(), "uptime", pool=pool)
    assert len(f.connects) == 2


def test_connect_options(tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    key = tmp_path / "id_ed25519"
    key.write_text("not used by the fake")
    with FakeSsh(Command("true")) as f:
        run(make_host(known_hosts=str(known), key_file=str(key), connect_timeout=7), "true", pool=fake_pool(f))
    c = f.connects[0]
    assert (c.hostname, c.port, c.username) == ("127.0.0.1", 2201, "drpoc")
    assert c.kwargs["key_filename"] == str(key)
    assert c.kwargs["allow_agent"] is True and c.kwargs["look_for_keys"] is False
    assert "password" not in c.kwargs and "passphrase" not in c.kwargs
    assert c.kwargs["timeout"] == c.kwargs["banner_timeout"] == c.kwargs["auth_timeout"] == 7
    assert c.client.host_key_files == [str(known)]
    assert isinstance(c.client.policy, paramiko.RejectPolicy)


def test_unknown_host_keys_only_on_explicit_opt_in():
    with FakeSsh(Command("true")) as f:
        run(make_host(), "true", pool=fake_pool(f, accept_unknown_host_keys=True))
    assert isinstance(f.clients[0].policy, paramiko.AutoAddPolicy)
    assert SshPool()._accept_unknown is False


def test_missing_key_file_is_reported_before_connecting(tmp_path):
    with FakeSsh() as f:
        with pytest.raises(RemoteError, match=r"key_file .*/nope for drpoc@aws-vpn is missing or unreadable"):
            run(make_host(key_file=str(tmp_path / "nope")), "true", pool=fake_pool(f))
    assert not f.connects


@pytest.mark.parametrize("exc, words", [
    (paramiko.AuthenticationException("Authentication failed."),
     "authentication refused for drpoc@aws-vpn [127.0.0.1]:2201: check key_file/ssh-agent"),
    (paramiko.SSHException("No authentication methods available"), "authentication refused for drpoc@aws-vpn"),
    (socket.timeout("timed out"), "connect timeout after 5s to aws-vpn [127.0.0.1]:2201"),
    (paramiko.ssh_exception.NoValidConnectionsError({("127.0.0.1", 2201): ConnectionRefusedError(111, "x")}),
     "connection refused by aws-vpn [127.0.0.1]:2201"),
    (paramiko.SSHException("Error reading SSH protocol banner"), "no SSH handshake from aws-vpn"),
    (socket.gaierror(-2, "Name or service not known"), "cannot resolve 127.0.0.1 for aws-vpn"),
    (OSError(113, "No route to host"), "cannot reach aws-vpn [127.0.0.1]:2201 (No route to host)"),
])
def test_connect_errors_are_explained(exc, words):
    with FakeSsh(connect_errors=[exc]) as f:
        with pytest.raises(RemoteError) as caught:
            run(make_host(), "true", pool=fake_pool(f))
    assert words in str(caught.value)
    assert caught.value.host == "aws-vpn" and f.clients[0].closed


def test_jump_host_carries_the_connection():
    bastion = make_host(name="bastion", address="127.0.0.1", port=2200)
    target = make_host(name="aws-db", address="10.20.5.9", port=22, jump="bastion", jump_host=bastion)
    with FakeSsh(Command("hostname", host="10.20.5.9:22")) as f:
        run(target, "hostname", pool=fake_pool(f))
    assert [(c.hostname, c.port) for c in f.connects] == [("127.0.0.1", 2200), ("10.20.5.9", 22)]
    assert f.tunnels == [("127.0.0.1:2200", ("10.20.5.9", 22))]
    assert f.connects[1].kwargs["sock"].dest == ("10.20.5.9", 22)


def test_open_tunnel_uses_direct_tcpip():
    with FakeSsh() as f:
        chan = open_tunnel(make_host(name="aws-db"), "127.0.0.1", 3306, pool=fake_pool(f))
    assert chan.kind == "direct-tcpip" and f.tunnels == [("127.0.0.1:2201", ("127.0.0.1", 3306))]


def test_commands_are_logged_at_debug_only(caplog):
    with FakeSsh(Command("sudo -n ipsec statusall")) as f:
        with caplog.at_level(logging.DEBUG, logger="chaostoolkit"):
            run(make_host(), "ipsec statusall", sudo=True, pool=fake_pool(f))
    records = [r for r in caplog.records if r.name == "chaostoolkit"]
    assert any("aws-vpn" in r.getMessage() and "sudo -n ipsec statusall" in r.getMessage() for r in records)
    assert all(r.levelno == logging.DEBUG for r in records)


def test_close_all():
    with FakeSsh(Command("a"), Command("b", host="127.0.0.1:2203")) as f:
        pool = fake_pool(f)
        run(make_host(), "a", pool=pool)
        run(make_host(name="onprem-vpn", port=2203), "b", pool=pool)
        pool.close_all()
    assert all(c.closed for c in f.clients)


def test_module_pool_verifies_host_keys():
    assert isinstance(remote.POOL, SshPool) and remote.POOL._accept_unknown is False


def test_fake_fails_on_unexpected_and_missing_commands():
    f = FakeSsh(Command("expected"))
    with pytest.raises(AssertionError, match="unexpected command 'other'"):
        run(make_host(), "other", pool=fake_pool(f))
    with pytest.raises(AssertionError):
        f.assert_all_ran()
    g = FakeSsh(Command("never"))
    with pytest.raises(AssertionError, match="never ran"):
        g.assert_all_ran()


# ==============================================================================================================
# a real paramiko server on 127.0.0.1 (fakessh.TinySshd)


@pytest.fixture(scope="module")
def sshd():
    server = TinySshd()
    yield server
    server.stop()


@pytest.fixture
def key_file(sshd, tmp_path) -> str:
    path = tmp_path / "id_ed25519"
    path.write_text(sshd.client_pem)
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def known_hosts(sshd, tmp_path) -> str:
    path = tmp_path / "known_hosts"
    path.write_text(sshd.known_hosts_line())
    return str(path)


@pytest.fixture
def pool():
    p = SshPool(user_known_hosts=None)
    yield p
    p.close_all()


def real_host(sshd, key_file, known_hosts, **overrides) -> SshHost:
    return make_host(port=sshd.port, key_file=key_file, known_hosts=known_hosts, **overrides)


def test_real_run_captures_output_and_status(sshd, key_file, known_hosts, pool):
    h = real_host(sshd, key_file, known_hosts)
    ok = run(h, ["echo", "hello world"], pool=pool)
    assert (ok.exit_status, ok.stdout, ok.stderr) == (0, "hello world\n", "")
    bad = run(h, "fail 3", pool=pool)
    assert (bad.exit_status, bad.stderr) == (3, "failed\n")
    assert pool.connects == 1


def test_real_large_interleaved_output_does_not_deadlock(sshd, key_file, known_hosts, pool):
    size = 3 * 1024 * 1024  # more than paramiko's 2 MiB window, on each stream
    result = run(real_host(sshd, key_file, known_hosts), f"big {size}", timeout=60, pool=pool)
    assert (len(result.stdout), len(result.stderr), result.exit_status) == (size, size, 0)


def test_real_timeout_leaves_the_connection_usable(sshd, key_file, known_hosts, pool):
    h = real_host(sshd, key_file, known_hosts)
    with pytest.raises(RemoteError, match="`sleep 10` timed out after 0.3s"):
        run(h, "sleep 10", timeout=0.3, pool=pool)
    assert run(h, "echo still here", pool=pool).stdout == "still here\n"
    assert pool.connects == 1


def test_real_reconnect_after_the_server_dropped_us(sshd, key_file, known_hosts, pool):
    h = real_host(sshd, key_file, known_hosts)
    run(h, "echo one", pool=pool)
    first = pool.get(h).get_transport()
    sshd.drop_connections()
    deadline = time.monotonic() + 5
    while first.is_active() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not first.is_active()
    assert run(h, "echo two", pool=pool).stdout == "two\n"
    assert pool.connects == 2


def test_real_unknown_host_key_is_refused(sshd, key_file, tmp_path, pool):
    known = tmp_path / "empty_known_hosts"
    known.write_text("")
    with pytest.raises(RemoteError) as caught:
        run(real_host(sshd, key_file, str(known)), "echo hi", pool=pool)
    message = str(caught.value)
    assert f"unknown host key for aws-vpn [127.0.0.1]:{sshd.port}" in message
    assert f"add it to {known} (ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known})" in message
    assert "or fix `known_hosts` in the inventory" in message
    assert remote._fingerprint(sshd.host_key) in message
    assert caught.value.host == "aws-vpn" and "echo hi" not in sshd.commands


def test_real_missing_known_hosts_file_is_refused_too(sshd, key_file, tmp_path, pool):
    with pytest.raises(RemoteError, match="unknown host key"):
        run(real_host(sshd, key_file, str(tmp_path / "absent")), "echo hi", pool=pool)


def test_real_changed_host_key_is_refused(sshd, key_file, tmp_path, pool):
    other, _ = ed25519()
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line(other))
    with pytest.raises(RemoteError, match=r"host key of aws-vpn \[127.0.0.1\]:\d+ does not match"):
        run(real_host(sshd, key_file, str(known)), "echo hi", pool=pool)


def test_real_opt_in_accepts_unknown_host_keys(sshd, key_file, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    lenient = SshPool(accept_unknown_host_keys=True, user_known_hosts=None)
    try:
        assert run(real_host(sshd, key_file, str(known)), "echo ok", pool=lenient).ok
    finally:
        lenient.close_all()
    assert known.read_text() == ""  # accepted in memory, the file is left alone


def test_real_refused_authentication(sshd, known_hosts, tmp_path, pool):
    _, pem = ed25519()
    wrong = tmp_path / "wrong_key"
    wrong.write_text(pem)
    wrong.chmod(0o600)
    with pytest.raises(RemoteError) as caught:
        run(real_host(sshd, str(wrong), known_hosts), "echo hi", pool=pool)
    assert f"authentication refused for drpoc@aws-vpn [127.0.0.1]:{sshd.port}: check key_file/ssh-agent" \
        in str(caught.value)


def test_real_no_key_and_no_agent(sshd, known_hosts, pool):
    with pytest.raises(RemoteError, match="authentication refused for drpoc@aws-vpn"):
        run(real_host(sshd, None, known_hosts), "echo hi", pool=pool)


def test_real_connection_refused(pool):
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(RemoteError) as caught:
        run(make_host(port=port, connect_timeout=2), "echo hi", pool=pool)
    assert f"connection refused by aws-vpn [127.0.0.1]:{port}" in str(caught.value)


def test_real_silent_listener_times_out(pool):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts TCP (backlog), never speaks SSH
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(RemoteError) as caught:
            run(make_host(port=port, connect_timeout=0.5), "echo hi", pool=pool)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert f"no SSH handshake from aws-vpn [127.0.0.1]:{port} within 0.5s" in str(caught.value)
    assert elapsed < 10  # bounded by connect_timeout, not paramiko's 15 s default banner timeout


def test_real_jump_host(sshd, key_file, known_hosts, pool):
    bastion = real_host(sshd, key_file, known_hosts, name="bastion")
    target = real_host(sshd, key_file, known_hosts, name="aws-db", jump="bastion", jump_host=bastion)
    accepted = sshd.accepted
    assert run(target, "echo through the bastion", pool=pool).stdout == "through the bastion\n"
    assert ("127.0.0.1", sshd.port) in sshd.tunnels
    assert pool.connects == 2 and sshd.accepted == accepted + 2


def test_real_tunnel_carries_bytes(sshd, key_file, known_hosts, pool):
    echo = socket.create_server(("127.0.0.1", 0))
    port = echo.getsockname()[1]

    def serve():
        conn, _ = echo.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    chan = open_tunnel(real_host(sshd, key_file, known_hosts, name="aws-db"), "127.0.0.1", port, pool=pool)
    try:
        chan.settimeout(5)
        chan.sendall(b"mysql handshake")
        assert chan.recv(1024) == b"MYSQL HANDSHAKE"
    finally:
        chan.close()
        echo.close()


def test_real_tunnel_to_nowhere(sshd, key_file, known_hosts, pool):
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(RemoteError) as caught:
        open_tunnel(real_host(sshd, key_file, known_hosts, name="aws-db"), "127.0.0.1", port, pool=pool)
    assert f"aws-db refused direct-tcpip to 127.0.0.1:{port}" in str(caught.value)
    assert "AllowTcpForwarding" in str(caught.value)


def test_connection_reset_before_banner_is_named_reset_not_timeout():
    """A relay (or a load balancer) that accepts the TCP connection and then closes it because sshd behind it is
    dead: paramiko words it 'Error reading SSH protocol banner'; that is a reset after a fraction of a second, not
    a missing handshake within the connect timeout."""
    import paramiko

    from drpoc_chaos.remote import _connect_error
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            # no `from`: paramiko raises it this way, so the reset is only the implicit __context__
            raise paramiko.SSHException(  # noqa: B904
                "Error reading SSH protocol banner[Errno 104] Connection reset by peer")
    except paramiko.SSHException as exc:
        err = _connect_error(exc, make_host(), elapsed=0.4)
    assert err.kind == "reset"
    assert "connection reset by" in str(err) and "after 0.4s" in str(err) and "within" not in str(err)


@pytest.mark.parametrize("exc,kind", [
    (ConnectionRefusedError(111, "Connection refused"), "refused"),
    (TimeoutError(), "timeout"),
    (OSError(113, "No route to host"), "unreachable"),
])
def test_connect_errors_carry_their_kind(exc, kind):
    from drpoc_chaos.remote import _connect_error
    assert _connect_error(exc, make_host()).kind == kind


def test_paramiko_transport_tracebacks_are_not_printed():
    import logging

    import drpoc_chaos.remote  # noqa: F401
    assert logging.getLogger("paramiko.transport").getEffectiveLevel() > logging.ERROR
