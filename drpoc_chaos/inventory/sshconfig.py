"""OpenSSH habits: what `ssh <address>` would take from an ssh_config file — HostName, User, Port, IdentityFile,
UserKnownHostsFile, ConnectTimeout, ProxyJump (a chain `a,b`, and a jump whose own entry has a ProxyJump) — applied
to the inventory's hosts. The inventory's own values win: a key the inventory sets (on the host or in
ssh_defaults) is never replaced by the file's.

The file is parsed by paramiko.SSHConfig (Host/Match patterns, %h tokens, first value wins, as OpenSSH does); only
the merge into the inventory is ours.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable

import paramiko

from .models import SshHost

DEFAULT_SSH_CONFIG = "~/.ssh/config"
MAX_JUMPS = 8  # a longer ProxyJump chain is a loop in the file

Fail = Callable[[str, str, str], None]


def read_ssh_config(path: str) -> paramiko.SSHConfig:
    """Parse an ssh_config file (raises OSError when it cannot be read)."""
    return paramiko.SSHConfig.from_path(os.path.expanduser(path))


def _first_existing(paths: list[str]) -> str | None:
    for p in paths:
        full = os.path.expanduser(p)
        if os.path.exists(full):
            return full
    return None


def _parse_hop(spec: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` (and `ssh://user@host:port`) as ProxyJump writes a hop."""
    spec = spec.strip().removeprefix("ssh://")
    user, _, rest = spec.rpartition("@")
    host, port = rest, None
    if rest.startswith("["):  # [v6]:port
        host, _, tail = rest[1:].partition("]")
        port = int(tail[1:]) if tail.startswith(":") and tail[1:].isdigit() else None
    elif rest.count(":") == 1:
        h, _, p = rest.partition(":")
        if p.isdigit():
            host, port = h, int(p)
    return (user or None), host, port


def apply_ssh_config(host: SshHost, config: paramiko.SSHConfig, origin: str, fail: Fail,
                     inventory_hosts: dict[str, SshHost] | None = None) -> SshHost:
    """`host` with what `config` says about its address, for every key the inventory did not set
    (`host.set_keys`). A ProxyJump is followed only when the inventory has no `jump` for the host: each hop is
    resolved through the same file (its own HostName, User, Port, IdentityFile, ProxyJump …). `fail(key, problem,
    fix)` reports a problem (it raises)."""
    return _resolve(host, config, origin, fail, inventory_hosts or {}, depth=0)


def _resolve(host: SshHost, config: paramiko.SSHConfig, origin: str, fail: Fail,
             inventory_hosts: dict[str, SshHost], depth: int) -> SshHost:
    if depth > MAX_JUMPS:
        fail(f"hosts.{host.name}", f"ProxyJump in {origin} goes more than {MAX_JUMPS} hops deep (a loop?)",
             "make the ProxyJump chain end at a host without one")
    entry = config.lookup(host.address)
    explicit = host.set_keys
    changes: dict = {}
    if entry.get("hostname") and entry["hostname"] != host.address:
        changes["address"] = entry["hostname"]
    if "port" in entry and "port" not in explicit:
        try:
            changes["port"] = int(entry["port"])
        except ValueError:
            fail(f"hosts.{host.name}", f"Port {entry['port']!r} for {host.address} in {origin} is not a number",
                 f"fix the Port line in {origin}")
    if "user" in entry and "user" not in explicit:
        changes["user"] = entry["user"]
    if "identityfile" in entry and "key_file" not in explicit:
        found = _first_existing(list(entry["identityfile"]))
        if found:
            changes["key_file"] = found
    if "userknownhostsfile" in entry and "known_hosts" not in explicit:
        found = _first_existing(str(entry["userknownhostsfile"]).split())
        if found:
            changes["known_hosts"] = found
    if "connecttimeout" in entry and "connect_timeout" not in explicit:
        try:
            changes["connect_timeout"] = float(entry["connecttimeout"])
        except ValueError:
            pass
    proxy = str(entry.get("proxyjump") or "").strip()
    if proxy and proxy.lower() != "none" and host.jump is None:
        hops = [h for h in proxy.split(",") if h.strip()]
        if len(hops) == 1 and hops[0].strip() in inventory_hosts:
            changes["jump"] = hops[0].strip()  # an inventory host: the loader chains it like an inventory `jump`
        else:
            previous: SshHost | None = None
            for spec in hops:
                user, address, port = _parse_hop(spec)
                given = {k for k, v in (("user", user), ("port", port)) if v is not None}
                hop = SshHost(name=f"{spec.strip()} (ProxyJump of {host.name})", address=address,
                              port=port or 22, user=user or host.user, sudo=False, key_file=host.key_file,
                              known_hosts=host.known_hosts, connect_timeout=host.connect_timeout,
                              command_timeout=host.command_timeout,
                              set_keys=frozenset(given | ({"key_file"} if "key_file" in explicit else set())
                                                 | ({"known_hosts"} if "known_hosts" in explicit else set())))
                if previous is not None:  # the chain: a,b means through a to b, then through b to the host
                    hop = replace(hop, jump=previous.name, jump_host=previous)
                hop = _resolve(hop, config, origin, fail, {}, depth + 1)
                previous = hop
            assert previous is not None
            changes.update(jump=previous.name, jump_host=previous)
    return replace(host, **changes) if changes else host


def ssh_config_path(value: str | None, inventory_dir: Path) -> tuple[str | None, bool]:
    """The file to read and whether it was given explicitly (an explicit file must exist; the default only if it
    does)."""
    if value is None:
        default = os.path.expanduser(DEFAULT_SSH_CONFIG)
        return (default if os.path.isfile(default) else None), False
    if value.lower() == "none":
        return None, True
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else inventory_dir / p), True
