"""The lab's secrets and SSH keys, made once and kept across `lab down`/`lab up` under the state directory.

- secrets/: the MariaDB password of the `drpoc` user, the replication password and the IPsec PSK (root-only files);
- ssh/: the client key the inventory names, the authorized_keys every lab sshd reads, and a known_hosts that pins
  each host's key at its published 127.0.0.1 port;
- hosts/<host>/ssh_host_ed25519_key: one host key per lab host that runs sshd;
- home/<user>: the home directories of the two login users (uids of topology.py).
"""
from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path

from .system import run
from .topology import HOSTS, LOGIN_UID, LOGIN_USER, NOSUDO_UID, NOSUDO_USER, Paths

SECRET_FILES = ("mysql_password", "repl_password", "psk")


def ensure_secrets_and_keys(p: Paths) -> None:
    p.secrets.mkdir(parents=True, exist_ok=True)
    os.chmod(p.secrets, 0o700)
    for name in SECRET_FILES:
        f = p.secrets / name
        if not f.exists():
            f.write_text(_secrets.token_hex(16) + "\n")
            os.chmod(f, 0o600)
    p.ssh.mkdir(parents=True, exist_ok=True)
    os.chmod(p.ssh, 0o755)
    if not p.client_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "drpoc-lab", "-f", str(p.client_key)])
    (p.ssh / "authorized_keys").write_text(Path(str(p.client_key) + ".pub").read_text())
    os.chmod(p.ssh / "authorized_keys", 0o644)
    home = p.state / "home"
    for user, uid in ((LOGIN_USER, LOGIN_UID), (NOSUDO_USER, NOSUDO_UID)):
        (home / user).mkdir(parents=True, exist_ok=True)
        os.chown(home / user, uid, uid)
    known = []
    for h in HOSTS:
        if not h.ssh_port:
            continue
        key = p.host_dir(h.name) / "ssh_host_ed25519_key"
        key.parent.mkdir(parents=True, exist_ok=True)
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.name, "-f", str(key)])
        pub = Path(str(key) + ".pub").read_text().split()
        known.append(f"[127.0.0.1]:{h.ssh_port} {pub[0]} {pub[1]}")
    p.known_hosts.write_text("\n".join(known) + "\n")
