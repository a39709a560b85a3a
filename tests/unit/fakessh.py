"""A scripted fake of paramiko's SSH client, in the manner of Fabric's `fabric.testing`.

Declare the commands a test expects, with what they print and how they exit; hand `fake.client` to `SshPool` as
its client factory; when the `with` block ends (or `assert_all_ran()` is called) the fake checks that every
expected command really ran. An unexpected command fails the test at once.

    with FakeSsh(Command("ipsec statusall", out="...", exit=0)) as fake:
        pool = SshPool(client_factory=fake.client, user_known_hosts=None)
        run(host, "ipsec statusall", pool=pool)

It fakes only what drpoc_chaos.remote uses: SSHClient (load_system_host_keys, set_missing_host_key_policy,
connect, get_transport, close), Transport (is_active, open_session, open_channel, close) and Channel (settimeout,
exec_command, fileno, recv_ready/recv, recv_stderr_ready/recv_stderr, exit_status_ready, recv_exit_status, close).
It is no substitute for the tests against a real SSH server and the real lab: `TinySshd` below is a real
paramiko SSH server on 127.0.0.1 (public-key auth, a few commands, direct-tcpip to 127.0.0.1) for those.
"""
from __future__ import annotations

import io
import os
import shlex
import socket
import threading
import time
from dataclasses import dataclass, field

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["Command", "FakeSsh", "TinySshd", "ed25519"]


@dataclass
class Command:
    """One expected command. `delay` holds output and exit status back that long; `hang` never finishes.
    `host` ("address:port"), when set, is where it must run."""

    cmd: str
    out: str | bytes = ""
    err: str | bytes = ""
    exit: int = 0
    delay: float = 0.0
    hang: bool = False
    host: str | None = None

    def __post_init__(self):
        if isinstance(self.out, str):
            self.out = self.out.encode()
        if isinstance(self.err, str):
            self.err = self.err.encode()


@dataclass
class Connect:
    """What one `connect()` received."""

    hostname: str
    port: int
    username: str
    kwargs: dict
    client: "FakeClient" = field(repr=False)


class FakeSsh:
    """A scripted set of SSH hosts: the expected commands, in order (or any order with `ordered=False`)."""

    def __init__(self, *commands: Command, ordered: bool = True, connect_errors: list | None = None):
        self.expected = list(commands)
        self.ordered = ordered
        self.ran: list[tuple[str, str]] = []  # (address:port, command)
        self.connects: list[Connect] = []
        self.tunnels: list[tuple[str, tuple]] = []  # (address:port of the SSH host, destination)
        self.connect_errors = list(connect_errors or [])  # raised by the next connect() calls, in order
        self.clients: list[FakeClient] = []
        self.channels: list[FakeChannel] = []
        self.failing_sessions = 0
        self._lock = threading.Lock()
        self._failures: list[str] = []

    # the client factory for SshPool
    def client(self) -> "FakeClient":
        client = FakeClient(self)
        self.clients.append(client)
        return client

    def kill_transports(self) -> None:
        """Every open connection dies, as when the peer drops it: `is_active()` turns False."""
        for client in self.clients:
            if client.transport is not None:
                client.transport.active = False

    def fail_sessions(self, count: int = 1) -> None:
        """The next `count` open_session()/open_channel() calls find the connection dead although it still
        looked active (as when the peer vanished silently): each raises EOFError and marks its transport dead."""
        self.failing_sessions = count

    def take(self, where: str, command: str) -> Command:
        with self._lock:
            self.ran.append((where, command))
            candidates = self.expected[:1] if self.ordered else self.expected
            for i, expected in enumerate(candidates):
                if expected.cmd == command and (expected.host is None or expected.host == where):
                    return self.expected.pop(i)
            message = (f"unexpected command {command!r} on {where}; expected "
                       f"{[c.cmd for c in candidates] or 'no more commands'}")
            self._failures.append(message)
        raise AssertionError(message)

    def assert_all_ran(self) -> None:
        assert not self._failures, "; ".join(self._failures)
        assert not self.expected, f"expected commands never ran: {[c.cmd for c in self.expected]}"

    def __enter__(self) -> "FakeSsh":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for channel in self.channels:
            channel.close()
        if exc_type is None:
            self.assert_all_ran()


class FakeClient:
    def __init__(self, fake: FakeSsh):
        self.fake = fake
        self.host_key_files: list[str] = []
        self.policy = None
        self.transport: FakeTransport | None = None
        self.closed = False

    def load_system_host_keys(self, filename=None):
        self.host_key_files.append(filename)

    def set_missing_host_key_policy(self, policy):
        self.policy = policy

    def connect(self, hostname, port=22, username=None, **kwargs):
        self.fake.connects.append(Connect(hostname, port, username, kwargs, self))
        if self.fake.connect_errors:
            raise self.fake.connect_errors.pop(0)
        self.transport = FakeTransport(self.fake, f"{hostname}:{port}")

    def get_transport(self):
        return self.transport

    def close(self):
        self.closed = True
        if self.transport is not None:
            self.transport.active = False
        self.transport = None


class FakeTransport:
    def __init__(self, fake: FakeSsh, where: str):
        self.fake = fake
        self.where = where
        self.active = True

    def is_active(self):
        return self.active

    def _check(self):
        if self.fake.failing_sessions > 0:
            self.fake.failing_sessions -= 1
            self.active = False
            raise EOFError()
        if not self.active:
            raise paramiko.SSHException("SSH session not active")

    def open_session(self, timeout=None):
        self._check()
        channel = FakeChannel(self.fake, self.where)
        self.fake.channels.append(channel)
        return channel

    def open_channel(self, kind, dest_addr=None, src_addr=None, timeout=None):
        self._check()
        self.fake.tunnels.append((self.where, tuple(dest_addr)))
        return FakeTunnel(kind, tuple(dest_addr))

    def close(self):
        self.active = False


class FakeTunnel:
    def __init__(self, kind, dest):
        self.kind = kind
        self.dest = dest
        self.closed = False

    def close(self):
        self.closed = True


class FakeChannel:
    def __init__(self, fake: FakeSsh, where: str):
        self.fake = fake
        self.where = where
        self.command: Command | None = None
        self.timeout = None
        self.closed = False
        self._ready_at = None
        self._out = 0
        self._err = 0
        self._read_fd, self._write_fd = os.pipe()
        self._timer: threading.Timer | None = None
        self._fd_lock = threading.Lock()

    def settimeout(self, timeout):
        self.timeout = timeout

    def exec_command(self, command):
        self.command = self.fake.take(self.where, command)
        if self.command.hang:
            return
        self._ready_at = time.monotonic() + self.command.delay
        if self.command.delay:
            self._timer = threading.Timer(self.command.delay, self._wake)
            self._timer.daemon = True
            self._timer.start()
        else:
            self._wake()

    def _wake(self):
        with self._fd_lock:  # never write to a closed (and perhaps reused) descriptor
            if not self.closed:
                os.write(self._write_fd, b"x")

    def _ready(self) -> bool:
        return self._ready_at is not None and time.monotonic() >= self._ready_at and not self.closed

    def fileno(self):
        return self._read_fd

    def recv_ready(self):
        return self._ready() and self._out < len(self.command.out)

    def recv(self, nbytes):
        data = self.command.out[self._out:self._out + nbytes]
        self._out += len(data)
        return data

    def recv_stderr_ready(self):
        return self._ready() and self._err < len(self.command.err)

    def recv_stderr(self, nbytes):
        data = self.command.err[self._err:self._err + nbytes]
        self._err += len(data)
        return data

    def exit_status_ready(self):
        return self.closed or self._ready()

    def recv_exit_status(self):
        return self.command.exit if self._ready() else -1

    def close(self):
        with self._fd_lock:
            if self.closed:
                return
            self.closed = True
            if self._timer is not None:
                self._timer.cancel()
            os.close(self._read_fd)
            os.close(self._write_fd)


# ==============================================================================================================
# a real SSH server for tests


def ed25519() -> tuple[paramiko.Ed25519Key, str]:
    """A fresh Ed25519 key: the paramiko key and its OpenSSH private-key text."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()
    return paramiko.Ed25519Key(file_obj=io.StringIO(pem)), pem


class _Interface(paramiko.ServerInterface):
    def __init__(self, server: "TinySshd"):
        self.server = server

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if username == "drpoc" and key.asbytes() == self.server.client_key.asbytes():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        command = command.decode()
        self.server.commands.append(command)
        threading.Thread(target=self.server.execute, args=(channel, command), daemon=True).start()
        return True

    def check_channel_direct_tcpip_request(self, chanid, origin, destination):
        self.server.tunnels.append(tuple(destination))
        if destination[0] != "127.0.0.1":
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        try:
            sock = socket.create_connection(tuple(destination), timeout=2)
        except OSError:
            return paramiko.OPEN_FAILED_CONNECT_FAILED
        self.server.pending[chanid] = sock
        return paramiko.OPEN_SUCCEEDED


class TinySshd:
    """An SSH server for tests: public-key auth for `drpoc`, a few commands (echo, fail N, big N, sleep S) and
    direct-tcpip to 127.0.0.1 only. Listens on 127.0.0.1 on a free port."""

    def __init__(self):
        self.host_key, _ = ed25519()
        self.client_key, self.client_pem = ed25519()
        self.commands: list[str] = []
        self.tunnels: list[tuple] = []
        self.pending: dict[int, socket.socket] = {}
        self.transports: list[paramiko.Transport] = []
        self.channels: list[paramiko.Channel] = []
        self.accepted = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def known_hosts_line(self, key=None) -> str:
        key = key or self.host_key
        return f"[127.0.0.1]:{self.port} {key.get_name()} {key.get_base64()}\n"

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        transport = paramiko.Transport(conn)
        self.transports.append(transport)
        transport.add_server_key(self.host_key)
        try:
            transport.start_server(server=_Interface(self))
        except (paramiko.SSHException, EOFError, OSError):
            transport.close()
            return
        while transport.is_active() and not self._stop.is_set():
            chan = transport.accept(0.2)
            if chan is not None:
                self.channels.append(chan)  # a Channel closes itself when garbage-collected
            if chan is not None and chan.get_id() in self.pending:
                sock = self.pending.pop(chan.get_id())
                threading.Thread(target=self._pump, args=(sock, chan), daemon=True).start()
                threading.Thread(target=self._pump_back, args=(chan, sock), daemon=True).start()
        transport.close()

    @staticmethod
    def _pump(sock, chan):
        try:
            while data := sock.recv(32768):
                chan.sendall(data)
        except OSError:
            pass
        chan.close()

    @staticmethod
    def _pump_back(chan, sock):
        try:
            while data := chan.recv(32768):
                sock.sendall(data)
        except OSError:
            pass
        sock.close()

    def execute(self, chan, command):
        parts = shlex.split(command) or [""]
        word, arg = parts[0], " ".join(parts[1:])
        status = 0
        try:
            if word == "echo":
                chan.sendall((arg + "\n").encode())
            elif word == "fail":
                chan.sendall_stderr(b"failed\n")
                status = int(arg)
            elif word == "big":  # interleaved stdout and stderr, more than one SSH window of each
                left = int(arg)
                while left > 0:
                    n = min(left, 32768)
                    chan.sendall(b"o" * n)
                    chan.sendall_stderr(b"e" * n)
                    left -= n
            elif word == "sleep":
                deadline = time.monotonic() + float(arg)
                while time.monotonic() < deadline and not chan.closed:
                    time.sleep(0.02)
            else:
                chan.sendall_stderr(f"{word}: command not found\n".encode())
                status = 127
            chan.send_exit_status(status)
            # EOF, not close: this thread may run before paramiko has answered the exec request, and a close
            # arriving before that answer fails the client's exec_command. The client closes the channel.
            chan.shutdown_write()
        except OSError:  # the client closed the channel first
            pass

    def drop_connections(self):
        for t in self.transports:
            t.close()

    def stop(self):
        self._stop.set()
        self._listener.close()
        self.drop_connections()
        self._thread.join(2)
