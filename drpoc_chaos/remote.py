"""SSH to the inventory's hosts with paramiko: pooled connections, `run()`, `sudo -n`, jump hosts, direct-tcpip.

A thin shell: nothing here interprets what a command prints.

- One SSH connection per host, kept in a `SshPool` (module default `POOL`, closed at exit) and shared by threads;
  a dead transport is replaced transparently, once.
- Host keys are always verified against the inventory's `known_hosts` (and `~/.ssh/known_hosts`,
  `/etc/ssh/ssh_known_hosts`): an unknown or
  changed key is a `RemoteError`, never a silent accept. `SshPool(accept_unknown_host_keys=True)` is the only way
  to accept unknown keys, and it is off by default.
- Authentication: the host's `key_file` and the ssh-agent; never passwords, never keys found in ~/.ssh by guessing.
- Privileged commands run as `sudo -n <command>` (no prompt; a password request fails at once with a fix).
  `sudo -n` applies to the first command of a shell string only: give a list, or one command, per call.

Secrets: commands never carry secret values (passwords reach MySQL through db.py, never a command line), so
commands are logged — at debug level, to the `chaostoolkit` logger — as they are.
"""
from __future__ import annotations

import atexit
import base64
import hashlib
import logging
import os
import select
import shlex
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import paramiko

from .inventory import SshHost

__all__ = ["POOL", "CommandResult", "RemoteError", "SshPool", "open_tunnel", "run"]

log = logging.getLogger("chaostoolkit")
# paramiko's transport thread logs every failed handshake with a full traceback; the same failure reaches the caller
# as a RemoteError that says what happened and what to do, so the traceback is only noise on the user's terminal.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)

USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"  # read too, as OpenSSH does (GlobalKnownHostsFile)
_READ_CHUNK = 32768
_POLL = 0.1  # seconds between checks for an exit status that came without a channel close

SUDO_PASSWORD_MARKERS = ("sudo: a password is required", "sudo: a terminal is required")
SUDO_REFUSED_MARKERS = ("is not in the sudoers file", "is not allowed to execute", "is not allowed to run sudo")


class RemoteError(Exception):
    """An SSH operation failed. `.host` (inventory name), `.command` (as sent, or None when connecting) and
    `.result` (a CommandResult when the command ran) say which; the message says what to do."""

    def __init__(self, message: str, *, host: str | None = None, command: str | None = None,
                 result: "CommandResult | None" = None, kind: str = "command"):
        super().__init__(message)
        self.host = host
        self.command = command
        self.result = result
        # what went wrong, for callers that must tell "host unreachable" from "authentication refused":
        # refused | reset | timeout | handshake | auth | hostkey | dns | unreachable | negotiation | config | sudo |
        # command (ran, and failed)
        self.kind = kind


@dataclass(frozen=True)
class CommandResult:
    host: str
    command: str
    exit_status: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


# --------------------------------------------------------------------------------------------------------------
# connections


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey):
        super().__init__(f"Server {hostname!r} not found in known_hosts")
        self.hostname = hostname
        self.key = key


class _RejectUnknownHostKey(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, raising an exception that carries the offered key (for the message)."""

    def missing_host_key(self, client, hostname, key):
        raise _UnknownHostKey(hostname, key)


def _fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _where(host: SshHost) -> str:
    return f"{host.name} [{host.address}]:{host.port}"


class SshPool:
    """One paramiko client per host, reused across calls and threads.

    `client_factory` builds the client (tests inject a fake); `user_known_hosts` is read besides each host's
    `known_hosts` when it exists (None: don't). Clients are keyed by (name, address, port, user).
    """

    def __init__(self, client_factory: Callable[[], paramiko.SSHClient] = paramiko.SSHClient, *,
                 accept_unknown_host_keys: bool = False, user_known_hosts: str | None = USER_KNOWN_HOSTS,
                 system_known_hosts: str | None = SYSTEM_KNOWN_HOSTS):
        self._factory = client_factory
        self._accept_unknown = accept_unknown_host_keys
        self._user_known_hosts = user_known_hosts
        self._system_known_hosts = system_known_hosts
        self._clients: dict[tuple, paramiko.SSHClient] = {}
        self._locks: dict[tuple, threading.RLock] = {}
        self._lock = threading.Lock()
        self.connects = 0  # how many connections were opened (for tests and metrics)

    @staticmethod
    def _key(host: SshHost) -> tuple:
        # everything that decides whom we trust and how we log in: a changed known_hosts or key is a new connection
        return (host.name, host.address, host.port, host.user, host.key_file, host.known_hosts, host.jump)

    def _lock_for(self, key: tuple) -> threading.RLock:
        with self._lock:
            return self._locks.setdefault(key, threading.RLock())

    def get(self, host: SshHost) -> paramiko.SSHClient:
        """The connected client for `host`, connecting (or reconnecting a dead transport) when needed."""
        key = self._key(host)
        with self._lock_for(key):
            with self._lock:
                client = self._clients.get(key)
            if client is not None:
                transport = client.get_transport()
                if transport is not None and transport.is_active():
                    return client
                log.debug("ssh %s: connection lost, reconnecting", host.name)
                self._close_quietly(client)
                with self._lock:
                    self._clients.pop(key, None)
            client = self._connect(host)
            with self._lock:
                self._clients[key] = client
                self.connects += 1
            return client

    def discard(self, host: SshHost, client=None) -> None:
        """Close and forget the connection to `host` (the next call reconnects). With `client`, only if that is
        still the pooled one (another thread may have reconnected meanwhile)."""
        key = self._key(host)
        with self._lock_for(key):
            with self._lock:
                current = self._clients.get(key)
                if current is None or (client is not None and current is not client):
                    return
                del self._clients[key]
            self._close_quietly(current)

    def close_all(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            self._close_quietly(client)

    @staticmethod
    def _close_quietly(client) -> None:
        try:
            client.close()
        except Exception as exc:  # closing a broken connection may fail in many ways; nothing to do about it
            log.debug("ssh: error while closing a connection: %s", exc)

    def with_transport(self, host: SshHost, action: Callable[[paramiko.Transport], object], what: str):
        """Run `action(transport)` on `host`'s connection; if the transport turns out dead, reconnect once."""
        for attempt in (1, 2):
            client = self.get(host)
            transport = client.get_transport()
            try:
                if transport is None or not transport.is_active():
                    raise paramiko.SSHException("SSH transport is not active")
                return action(transport)
            except paramiko.ChannelException:
                raise
            except (paramiko.SSHException, EOFError, OSError) as exc:
                alive = transport is not None and transport.is_active()
                if alive or attempt == 2:
                    raise RemoteError(
                        f"{_where(host)}: cannot {what} ({exc or type(exc).__name__}): check sshd on {host.name} "
                        f"(MaxSessions, load, logs) and the network",
                        host=host.name, kind="reset" if isinstance(exc, _RESET) else "negotiation") from exc
                self.discard(host, client)
                log.debug("ssh %s: connection died (%s), reconnecting once", host.name, exc)

    # --- connecting ----------------------------------------------------------------------------------------

    def _connect(self, host: SshHost) -> paramiko.SSHClient:
        log.debug("ssh %s: connecting as %s", _where(host), host.user)
        if host.key_file and not os.access(host.key_file, os.R_OK):
            raise RemoteError(
                f"key_file {host.key_file} for {host.user}@{host.name} is missing or unreadable: "
                f"fix `key_file` in the inventory (the lab writes it on `drpoc lab up`)", host=host.name,
                kind="config")
        client = self._factory()
        for path in (host.known_hosts, self._user_known_hosts, self._system_known_hosts):
            if not path:
                continue
            path = os.path.expanduser(path)
            if not os.path.exists(path):
                continue
            try:
                client.load_system_host_keys(path)
            except (OSError, paramiko.SSHException, ValueError) as exc:
                raise RemoteError(f"cannot read known_hosts {path} ({exc}): fix or regenerate that file",
                                  host=host.name, kind="config") from exc
        if self._accept_unknown:
            log.warning("ssh %s: accepting unknown host keys (accept_unknown_host_keys=True)", host.name)
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        else:
            client.set_missing_host_key_policy(_RejectUnknownHostKey())
        sock = None
        if host.jump_host is not None:
            sock = open_tunnel(host.jump_host, host.address, host.port, pool=self,
                               timeout=host.connect_timeout)
        timeout = host.connect_timeout
        started = time.monotonic()
        try:
            client.connect(
                hostname=host.address, port=host.port, username=host.user,
                key_filename=host.key_file, allow_agent=True, look_for_keys=False,
                timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout,
                sock=sock,
            )
        except Exception as exc:
            self._close_quietly(client)
            if sock is not None:
                sock.close()
            error = _connect_error(exc, host, time.monotonic() - started)
            if error is None:
                raise
            raise error from exc
        tcp = getattr(client.get_transport(), "sock", None)
        if isinstance(tcp, socket.socket):
            # paramiko leaves Nagle on: with delayed ACKs every short command then waits ~40 ms for its reply
            tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client


_RESET = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, EOFError)


def _connect_error(exc: BaseException, host: SshHost, elapsed: float | None = None) -> RemoteError | None:
    """Say what happened when connecting — refused, reset, timeout, authentication, host key — and what to do."""
    where = _where(host)
    t = f"{host.connect_timeout:g}s"
    known = host.known_hosts or USER_KNOWN_HOSTS
    via = f" through {host.jump}" if host.jump else ""
    cause = exc.__cause__ or exc.__context__

    def error(message: str, kind: str) -> RemoteError:
        return RemoteError(message, host=host.name, kind=kind)

    if isinstance(exc, _UnknownHostKey):
        scan = f"ssh-keyscan -p {host.port} {host.address} >> {known}"
        if host.jump:
            scan += f" (run on {host.jump})"
        return error(
            f"unknown host key for {where} ({exc.key.get_name()} {_fingerprint(exc.key)}): add it to {known} "
            f"({scan}) after checking the fingerprint, or fix `known_hosts` in the inventory", "hostkey")
    if isinstance(exc, paramiko.BadHostKeyException):
        return error(
            f"host key of {where} does not match {known} (offered {_fingerprint(exc.key)}, "
            f"expected {_fingerprint(exc.expected_key)}): if the host was rebuilt, verify and replace its line "
            f"(ssh-keygen -R '[{host.address}]:{host.port}' -f {known}); otherwise do not connect", "hostkey")
    if isinstance(exc, paramiko.AuthenticationException) or (
            isinstance(exc, paramiko.SSHException) and "No authentication methods available" in str(exc)):
        key = f"key_file {host.key_file}" if host.key_file else "no key_file set"
        return error(
            f"authentication refused for {host.user}@{host.name} [{host.address}]:{host.port}: "
            f"check key_file/ssh-agent ({key}) and that the public key is in ~{host.user}/.ssh/authorized_keys",
            "auth")
    if isinstance(exc, paramiko.ChannelException):
        return None  # from open_tunnel: already explained there
    if isinstance(exc, paramiko.SSHException) and "protocol banner" in str(exc) and isinstance(cause, _RESET):
        # paramiko words a closed connection like a missing banner: the TCP connection was accepted, then closed
        after = f" after {elapsed:.1f}s" if elapsed is not None else ""
        return error(
            f"connection reset by {where}{via}{after}, before the SSH banner: something accepted the connection "
            f"and closed it — sshd on {host.name} is dead or refusing (MaxStartups, tcp wrappers), or a relay in "
            f"front of it has no backend. Check sshd there (for the lab: `drpoc lab status`)", "reset")
    if isinstance(exc, paramiko.SSHException) and (
            "protocol banner" in str(exc) or "No existing session" in str(exc)):
        # no banner within banner_timeout, or the handshake did not finish within the connect timeout
        return error(
            f"no SSH handshake from {where}{via} within {t} (no banner or key exchange): is sshd (and not another "
            f"service) listening on that port, and responsive? Check `port` in the inventory", "handshake")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return error(
            f"connect timeout after {t} to {where}{via}: the host is down or the port filtered; check address "
            f"and port in the inventory, the network, or raise connect_timeout", "timeout")
    if isinstance(exc, (paramiko.ssh_exception.NoValidConnectionsError, ConnectionRefusedError)):
        return error(
            f"connection refused by {where}: is sshd running there and is the lab up (`drpoc lab status`)? "
            f"Check `port` in the inventory", "refused")
    if isinstance(exc, _RESET):
        return error(f"connection reset by {where}{via} during the SSH handshake: check sshd on {host.name} and "
                     f"its logs", "reset")
    if isinstance(exc, socket.gaierror):
        return error(f"cannot resolve {host.address} for {host.name}: fix `address` in the inventory", "dns")
    if isinstance(exc, OSError):
        return error(f"cannot reach {where}{via} ({exc.strerror or exc}): check the network and the "
                     f"inventory's address/port", "unreachable")
    if isinstance(exc, paramiko.SSHException):
        return error(f"SSH negotiation with {where}{via} failed ({exc or type(exc).__name__}): check "
                     f"sshd on {host.name} and its logs", "negotiation")
    return None


POOL = SshPool()
atexit.register(POOL.close_all)


# --------------------------------------------------------------------------------------------------------------
# commands


def _command_text(command: str | Sequence[str]) -> str:
    if isinstance(command, str):
        return command
    return shlex.join(str(part) for part in command)


def run(host: SshHost, command: str | Sequence[str], sudo: bool = False, timeout: float | None = None,
        check: bool = False, pool: SshPool | None = None) -> CommandResult:
    """Run `command` on `host` and return its exit status and output.

    A list is quoted with shlex.join. With `sudo=True` the command runs as `sudo -n <command>` unless the host
    logs in as root (`sudo: false` in the inventory). `timeout` defaults to the host's `command_timeout`.

    Raises RemoteError when the host cannot be reached, when the command outlives the timeout (the channel is
    closed; the remote process may still run), when sudo asks for a password or refuses, and — with
    `check=True` — when the exit status is not 0. Otherwise a non-zero exit status is just returned (-1 when
    the command died without one, e.g. killed by a signal). `pool` defaults to the module's POOL.
    """
    pool = POOL if pool is None else pool
    text = _command_text(command)
    if sudo and host.sudo:
        text = "sudo -n " + text
    limit = host.command_timeout if timeout is None else timeout
    log.debug("ssh %s: %s", host.name, text)
    started = time.monotonic()

    def start(transport):
        chan = transport.open_session(timeout=host.connect_timeout)
        try:
            chan.settimeout(limit)
            chan.exec_command(text)
        except BaseException:
            chan.close()
            raise
        return chan

    chan = pool.with_transport(host, start, f"start `{text}`")
    try:
        stdout, stderr, status = _collect(chan, time.monotonic() + limit)  # the limit is for the command
    except _Timeout:
        raise RemoteError(
            f"{host.name}: `{text}` timed out after {limit:g}s (channel closed; the remote command may still be "
            f"running): find out why it hangs, or raise command_timeout / pass timeout=",
            host=host.name, command=text, kind="timeout") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        # a dead connection is replaced by the next call (SshPool.get); a live one stays for other threads
        raise RemoteError(
            f"{host.name}: lost the SSH connection while running `{text}` ({exc}); it may or may not have run: "
            f"check the host and the network, then retry", host=host.name, command=text, kind="reset") from exc
    finally:
        chan.close()
    result = CommandResult(host=host.name, command=text, exit_status=status,
                           stdout=stdout.decode("utf-8", "replace"), stderr=stderr.decode("utf-8", "replace"),
                           duration=time.monotonic() - started)
    log.debug("ssh %s: exit %d after %.3fs", host.name, status, result.duration)
    if status != 0:
        _raise_for_sudo(host, text, result)
        if check:
            tail = result.stderr.strip().splitlines()[-1:] or result.stdout.strip().splitlines()[-1:] or [""]
            raise RemoteError(f"{host.name}: `{text}` exited with {status}: {tail[0][:300]}",
                              host=host.name, command=text, result=result)
    return result


def _raise_for_sudo(host: SshHost, text: str, result: CommandResult) -> None:
    target = text[len("sudo -n "):] if text.startswith("sudo -n ") else text
    program = target.split(None, 1)[0] if target.strip() else target
    full = program if program.startswith("/") else f"/full/path/to/{program}"
    if any(marker in result.stderr for marker in SUDO_PASSWORD_MARKERS):
        raise RemoteError(
            f"sudo on {host.name} asks for a password: give {host.user} passwordless sudo for `{target}` "
            f"(sudo -n failed), e.g. `{host.user} ALL=(root) NOPASSWD: {full}` in "
            f"/etc/sudoers.d/, or log in as root with `sudo: false`",
            host=host.name, command=text, result=result, kind="sudo")
    if text.startswith("sudo -n ") and any(marker in result.stderr for marker in SUDO_REFUSED_MARKERS):
        raise RemoteError(
            f"sudo on {host.name} refuses `{target}` for {host.user}: add a NOPASSWD sudoers rule for "
            f"{program} in /etc/sudoers.d/", host=host.name, command=text, result=result, kind="sudo")


class _Timeout(Exception):
    pass


def _collect(chan, deadline: float) -> tuple[bytes, bytes, int]:
    """Read stdout and stderr as they come (neither can fill up and stall the other) until the exit status."""
    out: list[bytes] = []
    err: list[bytes] = []
    fd = chan.fileno()
    while True:
        progressed = False
        if chan.recv_ready():
            out.append(chan.recv(_READ_CHUNK))
            progressed = True
        if chan.recv_stderr_ready():
            err.append(chan.recv_stderr(_READ_CHUNK))
            progressed = True
        if not progressed and chan.exit_status_ready():
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout()
        if not progressed:
            select.select([fd], [], [], min(remaining, _POLL))
    return b"".join(out), b"".join(err), chan.recv_exit_status()


# --------------------------------------------------------------------------------------------------------------
# tunnels


def open_tunnel(host: SshHost, dest_address: str, dest_port: int, pool: SshPool | None = None,
                timeout: float | None = None) -> paramiko.Channel:
    """A socket-like channel to `dest_address:dest_port` as seen from `host` (SSH direct-tcpip).

    Used for MySQL endpoints with `via` and for jump hosts. Close it when done. Raises RemoteError.
    """
    pool = POOL if pool is None else pool
    limit = host.connect_timeout if timeout is None else timeout
    log.debug("ssh %s: direct-tcpip to %s:%s", host.name, dest_address, dest_port)

    def open_channel(transport):
        return transport.open_channel("direct-tcpip", (dest_address, int(dest_port)), ("127.0.0.1", 0),
                                      timeout=limit)

    what = f"open direct-tcpip to {dest_address}:{dest_port}"
    try:
        return pool.with_transport(host, open_channel, what)
    except paramiko.ChannelException as exc:
        raise RemoteError(
            f"{host.name} refused direct-tcpip to {dest_address}:{dest_port} ({exc.text or exc.code}): is "
            f"something listening there as seen from {host.name}, and does its sshd allow TCP forwarding "
            f"(AllowTcpForwarding yes)?", host=host.name) from exc
