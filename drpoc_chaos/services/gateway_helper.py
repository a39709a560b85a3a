"""The gateway helper: one root-owned script on each VPN gateway (`drpoc-gw`, shipped in this package) that the
drill runs with `sudo -n`, and nothing else.

Why a helper and not sudo rules for `ipsec`, `/bin/sh` and `setsid`: the drill lock and the dead-man's switch are
shell steps under /run, and a sudo rule for a shell is root for whoever holds the drill's key. The helper has a
fixed set of verbs (status, detect, down, up, healthy, the lock, the switch), checks every argument against a strict
pattern and runs the tool the caller names — `ipsec` (stroke) or `swanctl` (vici) — so the sudo rule can be exactly
`drpoc ALL=(root) NOPASSWD: /usr/local/sbin/drpoc-gw` (docs/REAL_HOSTS.md).

The helper is a POSIX shell script because the switch must run on the gateway alone, with whatever is there: a
gateway has sh, awk and strongSwan's tools, not necessarily Python.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from importlib import resources

from ..remote import CommandResult, RemoteError, SshHost, run
from .errors import StepFailed

HELPER_PATH = "/usr/local/sbin/drpoc-gw"
HELPER_VERSION = "2"
SCRIPT_NAME = "drpoc-gw"
SUDOERS_RULE = "{user} ALL=(root) NOPASSWD: {path}"

_checked: set[tuple[str, int, str, str]] = set()
_checked_lock = threading.Lock()


def script_text() -> str:
    """The helper script, as shipped with this version of drpoc-chaos."""
    return resources.files(__package__).joinpath(SCRIPT_NAME).read_text()


def install_hint(host: SshHost, path: str = HELPER_PATH) -> str:
    return (f"install it: `drpoc gateway-helper > drpoc-gw && scp drpoc-gw {host.address}: && ssh {host.address} "
            f"sudo install -o root -g root -m 0755 drpoc-gw {path}` and allow it in /etc/sudoers.d/drpoc: "
            f"`{SUDOERS_RULE.format(user=host.user, path=path)}` (docs/REAL_HOSTS.md)")


@dataclass(frozen=True)
class GatewayHelper:
    """The helper on one gateway: `host` is its SSH endpoint, `path` where the helper is installed."""

    host: SshHost
    path: str = HELPER_PATH

    def run(self, verb: str, *args: str, timeout: float | None = None, check: bool = False,
            pool=None) -> CommandResult:
        """`sudo -n <path> <verb> <args…>` on the gateway. Raises RemoteError when the host cannot be reached or
        sudo refuses, StepFailed when the helper is missing, outdated or refuses an argument."""
        self.ensure(pool)
        return self._run(verb, *args, timeout=timeout, check=check, pool=pool)

    def _run(self, verb: str, *args: str, timeout: float | None = None, check: bool = False,
             pool=None) -> CommandResult:
        result = run(self.host, [self.path, verb, *args], sudo=True, timeout=timeout,
                     **({"pool": pool} if pool is not None else {}))
        if result.exit_status != 0 and _missing(result.stderr, self.path):
            raise StepFailed(f"{self.host.name}: the drill's gateway helper {self.path} is not installed or not "
                             f"executable (`{result.command}` exited {result.exit_status}); "
                             + install_hint(self.host, self.path))
        if result.exit_status == 2 and result.stderr.startswith("drpoc-gw: "):
            raise StepFailed(f"{self.host.name}: `{result.command}`: {result.stderr.strip()[10:][:300]}")
        if check and result.exit_status != 0:
            said = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [""]
            raise RemoteError(f"{self.host.name}: `{result.command}` exited with {result.exit_status}: "
                              f"{said[0][:300]}", host=self.host.name, command=result.command, result=result)
        return result

    def ensure(self, pool=None) -> None:
        """Check once per process that the helper is there and is the version this drpoc speaks."""
        key = (self.host.address, self.host.port, self.host.user, self.path)
        with _checked_lock:
            if key in _checked:
                return
        result = self._run("version", pool=pool)
        m = re.fullmatch(r"drpoc-gw (\S+)", result.stdout.strip())
        if not m:
            raise StepFailed(f"{self.host.name}: {self.path} is not the drill's gateway helper (`{result.command}` "
                             f"printed {result.stdout.strip()[:80]!r}); " + install_hint(self.host, self.path))
        if m.group(1) != HELPER_VERSION:
            raise StepFailed(f"{self.host.name}: the gateway helper {self.path} is version {m.group(1)}, this "
                             f"drpoc-chaos needs version {HELPER_VERSION}: re-" + install_hint(self.host, self.path))
        with _checked_lock:
            _checked.add(key)


def _missing(stderr: str, path: str) -> bool:
    """The words of sudo or a login shell for a program that is not there ("sudo: /usr/local/sbin/drpoc-gw: command
    not found", "sh: 1: /usr/local/sbin/drpoc-gw: not found", "…: Permission denied"). They must name the helper:
    strongSwan's own "No such file or directory" (no charon socket) is a different problem."""
    first = stderr.strip().splitlines()[:1]
    return bool(first) and re.search(rf"(^|\s){re.escape(path)}:", first[0]) is not None and any(
        words in first[0] for words in ("command not found", "not found", "No such file or directory",
                                        "Permission denied"))


def forget_checks() -> None:
    """Check the helpers again on next use (after a reinstall; tests)."""
    with _checked_lock:
        _checked.clear()
