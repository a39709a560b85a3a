"""OpenSSH habits against the lab: an ssh_config generated here reaches aws-db at its lab address (10.20.11.123:22,
not published) through aws-vpn as ProxyJump — HostName, Port, User, IdentityFile, UserKnownHostsFile and ProxyJump
all from the file — and the inventory's own values still win."""
from __future__ import annotations

from pathlib import Path

import pytest

from drpoc_chaos import remote
from drpoc_chaos.inventory import clear_cache, load_inventory
from drpoc_chaos.lab.topology import HOSTS_BY_NAME, SOURCE_IP, Paths

from .support import variant

pytestmark = pytest.mark.lab


def host_key(host: str) -> str:
    kind, key = (Paths().host_dir(host) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    return f"{kind} {key}"


@pytest.fixture
def ssh_config(tmp_path: Path) -> Path:
    paths = Paths()
    vpn_port = HOSTS_BY_NAME["aws-vpn"].ssh_port
    known = tmp_path / "known_hosts"
    # aws-db is checked at the address the jump connects to, as OpenSSH would
    known.write_text(f"[127.0.0.1]:{vpn_port} {host_key('aws-vpn')}\n{SOURCE_IP} {host_key('aws-db')}\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"""\
Host lab-aws-vpn
  HostName 127.0.0.1
  Port {vpn_port}
  User drpoc
  IdentityFile {paths.client_key}
  UserKnownHostsFile {known}
Host lab-aws-db
  HostName {SOURCE_IP}
  User drpoc
  IdentityFile {paths.client_key}
  UserKnownHostsFile {known}
  ProxyJump lab-aws-vpn
""")
    return config


def through_config(tmp_path: Path, config: Path, **aws_db) -> dict:
    def mutate(d):
        known = d["ssh_defaults"].pop("known_hosts")
        d["ssh_defaults"].pop("key_file")
        d["ssh_defaults"]["ssh_config"] = str(config)
        for name, host in d["hosts"].items():
            if name != "aws-db":
                host.update(known_hosts=known, key_file=str(Paths().client_key))
        d["hosts"]["aws-db"] = {"address": "lab-aws-db", **aws_db}
    return variant(tmp_path, "ssh-config", mutate)


def test_reaches_aws_db_through_aws_vpn_as_proxyjump(ready, tmp_path, ssh_config):
    clear_cache()
    inv = load_inventory(configuration=through_config(tmp_path, ssh_config))
    db = inv.host("aws-db")
    assert (db.address, db.port, db.user) == (SOURCE_IP, 22, "drpoc")
    assert db.jump_host is not None and (db.jump_host.address, db.jump_host.port) == (
        "127.0.0.1", HOSTS_BY_NAME["aws-vpn"].ssh_port)
    pool = remote.SshPool(user_known_hosts=None, system_known_hosts=None)
    try:
        r = remote.run(db, "hostname; echo $SSH_CONNECTION", pool=pool)
        name, conn = r.stdout.splitlines()[:2]
        client_ip, _, server_ip, server_port = conn.split()
        assert name == "aws-db" and (server_ip, server_port) == (SOURCE_IP, "22")
        assert client_ip == "10.20.11.10", conn  # the connection came from aws-vpn's LAN address: the jump
        assert pool.connects == 2
        # sudo -n goes through the jump as on a direct connection (and the drill user has no sudo on a database
        # host: sudo's own refusal comes back, not a transport error)
        with pytest.raises(remote.RemoteError) as refused:
            remote.run(db, ["id", "-u"], sudo=True, pool=pool)
        assert refused.value.kind == "sudo" and "aws-db" in str(refused.value)
    finally:
        pool.close_all()


def test_inventory_values_win_over_the_config(ready, tmp_path, ssh_config):
    clear_cache()
    inv = load_inventory(configuration=through_config(tmp_path, ssh_config, user="drpoc-nosudo", port=22))
    db = inv.host("aws-db")
    assert db.user == "drpoc-nosudo" and db.jump_host is not None
    pool = remote.SshPool(user_known_hosts=None, system_known_hosts=None)
    try:
        assert remote.run(db, "id -un", pool=pool).stdout.strip() == "drpoc-nosudo"
    finally:
        pool.close_all()


def test_an_unknown_jump_host_key_is_refused(ready, tmp_path, ssh_config):
    (tmp_path / "known_hosts").write_text(f"{SOURCE_IP} {host_key('aws-db')}\n")  # aws-vpn's key left out
    clear_cache()
    inv = load_inventory(configuration=through_config(tmp_path, ssh_config))
    pool = remote.SshPool(user_known_hosts=None, system_known_hosts=None)
    with pytest.raises(remote.RemoteError, match="unknown host key for lab-aws-vpn"):
        remote.run(inv.host("aws-db"), "true", pool=pool)
    pool.close_all()
