"""The /etc files each lab host sees, written to disk and later bind-mounted over /etc inside its mount namespace
(the machine's own /etc is never changed).

Shared by all hosts (under the run directory): passwd, group and shadow with the lab's two login users added, and a
sudoers.d file. Per host (under the state directory, hosts/<host>/etc): hosts and sshd_config; on a gateway
ipsec.conf, ipsec.secrets, strongswan.conf and a swanctl/ directory (swanctl.conf), plus the drill's gateway helper
(hosts/<host>/sbin, over /usr/local/sbin); on a database host the whole mysql/ directory with its my.cnf.
The text of every file comes from configs.py (the helper's from the package).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..services.gateway_helper import SCRIPT_NAME, script_text
from . import configs
from .context import LabContext
from .topology import HELPER_DIR, Host, LabSettings, Paths, Topology


def write_host_files(ctx: LabContext, settings: LabSettings, libipsec: bool) -> None:
    p = ctx.paths
    passwd, group, shadow = configs.user_database(Path("/etc/passwd").read_text(),
                                                  Path("/etc/group").read_text(), str(p.state / "home"))
    etc = p.shared_etc
    (etc / "passwd").write_text(passwd)
    (etc / "group").write_text(group)
    (etc / "shadow").write_text(shadow)
    os.chmod(etc / "shadow", 0o640)
    sud = etc / "sudoers.d"
    sud.mkdir(exist_ok=True)
    (sud / "drpoc-lab").write_text(configs.sudoers())
    os.chmod(sud / "drpoc-lab", 0o440)
    topo = ctx.topo
    for h in topo.hosts:
        if not h.has_mount_ns:
            continue
        d = p.host_etc(h.name)
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts").write_text(configs.hosts_file(h.name, topo.databases))
        (d / "sshd_config").write_text(configs.sshd_config(
            str(p.host_dir(h.name) / "ssh_host_ed25519_key"), str(p.ssh / "authorized_keys")))
        if h.role == "gateway" and h.site is not None:  # every gateway is in a site
            gw = topo.gateways[h.site]
            (d / "ipsec.conf").write_text(configs.ipsec_conf(h.site, gw))
            (d / "ipsec.secrets").write_text(configs.ipsec_secrets(h.site, ctx.secret("psk"), gw))
            os.chmod(d / "ipsec.secrets", 0o600)
            (d / "strongswan.conf").write_text(configs.strongswan_conf(libipsec, settings.ipsec))
            sw = d / "swanctl"
            for sub in ("conf.d", "x509", "x509ca", "private", "rsa", "ecdsa", "pkcs8", "pkcs12", "pubkey"):
                (sw / sub).mkdir(parents=True, exist_ok=True)
            conf = configs.swanctl_conf(h.site, ctx.secret("psk"), settings.child(), gw) \
                if settings.ipsec == "swanctl" else "# drpoc lab: this gateway runs ipsec.conf (stroke)\n"
            (sw / "swanctl.conf").write_text(conf)
            os.chmod(sw / "swanctl.conf", 0o600)
            install_helper(p, h.name)
        if h.role == "database" and h.site is not None:  # every database is in a site
            db = topo.databases[h.site]
            (d / "mysql").mkdir(exist_ok=True)
            (d / "mysql" / "my.cnf").write_text(configs.mariadb_cnf(
                h.name, str(p.datadir(h.name)), db["server_id"], db["role"], settings.knobs))
            ensure_mysql_tls(d / "mysql" / "tls", h.name, db["ip"])


def ensure_mysql_tls(tls: Path, host: str, ip: str) -> None:
    """The server certificate my.cnf names (configs.MYSQL_TLS_DIR), made once: mariadbd does not start without it.
    It names the host, its lab address and 127.0.0.1 (where the relay publishes MySQL)."""
    if not all((tls / f).exists() for f in ("ca.pem", "server-cert.pem", "server-key.pem")):
        from .keys import write_mysql_tls
        write_mysql_tls(tls, [host], [ip, "127.0.0.1"])
    shutil.chown(tls / "server-key.pem", user="mysql", group="mysql")  # mariadbd reads it as `user = mysql`


def install_helper(p: Paths, host: str) -> Path:
    """The gateway helper as a real gateway has it: root-owned, 0755, in a root-owned directory (a helper the drill
    user could edit would be root for the drill user)."""
    sbin = p.host_sbin(host)
    sbin.mkdir(parents=True, exist_ok=True)
    os.chmod(sbin, 0o755)
    target = sbin / SCRIPT_NAME
    tmp = target.with_suffix(".tmp")
    tmp.write_text(script_text())
    os.chmod(tmp, 0o755)
    tmp.replace(target)
    return target


def refresh_helpers(p: Paths, topo: Topology) -> list[str]:
    """Re-install the helper on every gateway whose copy is not this version's script; returns their names."""
    out = []
    for h in topo.hosts:
        if h.role != "gateway":
            continue
        target = p.host_sbin(h.name) / SCRIPT_NAME
        try:
            current = target.read_text()
        except OSError:
            current = None
        if current != script_text():
            install_helper(p, h.name)
            out.append(h.name)
    return out


def etc_binds(p: Paths, h: Host) -> list[tuple[Path, str]]:
    """(file on disk, path inside the host) for every file above, in the order they are bind-mounted."""
    d = p.host_etc(h.name)
    binds = [(d / "hosts", "/etc/hosts"), (p.shared_etc / "passwd", "/etc/passwd"),
             (p.shared_etc / "group", "/etc/group"), (p.shared_etc / "shadow", "/etc/shadow"),
             (p.shared_etc / "sudoers.d", "/etc/sudoers.d")]
    if h.role == "gateway":
        binds += [(d / "ipsec.conf", "/etc/ipsec.conf"), (d / "ipsec.secrets", "/etc/ipsec.secrets"),
                  (d / "strongswan.conf", "/etc/strongswan.conf"), (d / "swanctl", "/etc/swanctl"),
                  (p.host_sbin(h.name), HELPER_DIR)]
    if h.role == "database":
        binds += [(d / "mysql", "/etc/mysql")]
    return binds
