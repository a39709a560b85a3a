"""OpenSSH habits (item 3 of "Install it like a product"): an ssh_config's HostName, User, Port, IdentityFile,
UserKnownHostsFile and ProxyJump (chains and nested jumps) applied to the inventory's hosts, the inventory's own
values winning; and the system known_hosts read beside the user's. The file is parsed by paramiko.SSHConfig; these
tests pin the merge. The real connection through a jump is tests/lab/test_ssh_config.py."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drpoc_chaos import inventory as inv
from drpoc_chaos.inventory import InventoryError, load_inventory
from drpoc_chaos.remote import SYSTEM_KNOWN_HOSTS, SshPool

from .fakessh import Command, FakeSsh


@pytest.fixture(autouse=True)
def _clean():
    inv.clear_cache()
    yield
    inv.clear_cache()


def inventory(tmp_path: Path, config: str, hosts: dict, ssh_defaults: dict | None = None) -> inv.Inventory:
    (tmp_path / "id_jump").write_text("key")
    (tmp_path / "id_db").write_text("key")
    (tmp_path / "kh").write_text("")
    (tmp_path / "ssh_config").write_text(config.replace("$DIR", str(tmp_path)))
    data = {
        "version": 1,
        "ssh_defaults": {"ssh_config": "ssh_config", **(ssh_defaults or {})},
        "hosts": {"gw": {"address": "gw.example"}, **hosts},
        "mysql_defaults": {"user": "drpoc", "password": {"env": "X"}},
        "sites": {
            "aws": {"gateway": {"host": "gw", "connection": "c", "local_subnet": "10.20.0.0/16",
                                "remote_subnet": "192.168.64.0/24"},
                    "database": {"role": "source", "host": "db", "mysql": {"address": "127.0.0.1"}}},
            "onprem": {"gateway": {"host": "gw", "connection": "c", "local_subnet": "192.168.64.0/24",
                                   "remote_subnet": "10.20.0.0/16"},
                       "database": {"role": "replica", "host": "db", "mysql": {"address": "127.0.0.1"}}},
        },
    }
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_inventory(path)


CONFIG = """\
Host bastion
  HostName 203.0.113.10
  User jumper
  Port 2222
  IdentityFile $DIR/id_jump
Host db.internal
  HostName 10.20.11.123
  User ops
  IdentityFile $DIR/absent_key
  IdentityFile $DIR/id_db
  UserKnownHostsFile $DIR/kh
  ProxyJump bastion
Host gw.example
  User gwuser
Host *
  ConnectTimeout 7
"""


def chain(host) -> list[tuple[str, int, str]]:
    out = []
    while host is not None:
        out.append((host.address, host.port, host.user))
        host = host.jump_host
    return out


def test_hostname_user_port_identity_and_proxyjump(tmp_path):
    i = inventory(tmp_path, CONFIG, {"db": {"address": "db.internal"}})
    db = i.host("db")
    assert chain(db) == [("10.20.11.123", 22, "ops"), ("203.0.113.10", 2222, "jumper")]
    assert db.key_file == str(tmp_path / "id_db")  # the first IdentityFile that exists
    assert db.known_hosts == str(tmp_path / "kh") and db.connect_timeout == 7.0
    assert db.jump_host is not None and db.jump_host.key_file == str(tmp_path / "id_jump")
    assert i.host("gw").user == "gwuser" and i.host("gw").address == "gw.example"


def test_inventory_values_win(tmp_path):
    i = inventory(tmp_path, CONFIG, {"db": {"address": "db.internal", "port": 2022, "user": "me",
                                            "key_file": "id_jump", "connect_timeout": 3}},
                  ssh_defaults={"known_hosts": "kh"})
    db = i.host("db")
    assert (db.address, db.port, db.user, db.key_file, db.connect_timeout) == (
        "10.20.11.123", 2022, "me", str(tmp_path / "id_jump"), 3.0)
    assert i.host("gw").known_hosts == str(tmp_path / "kh")


def test_inventory_jump_wins_over_proxyjump(tmp_path):
    i = inventory(tmp_path, CONFIG, {"db": {"address": "db.internal", "jump": "gw"}})
    assert i.host("db").jump == "gw" and chain(i.host("db"))[1] == ("gw.example", 22, "gwuser")


def test_proxyjump_chain_and_nested_jumps(tmp_path):
    config = CONFIG + """\
Host inner
  HostName 10.0.0.2
  User in
  ProxyJump bastion
Host deep
  HostName 10.0.0.3
  ProxyJump inner
Host chained
  HostName 10.0.0.4
  ProxyJump bastion,u2@10.0.0.9:2200
"""
    i = inventory(tmp_path, config, {"db": {"address": "deep", "user": "ops"}, "c": {"address": "chained",
                                                                                  "user": "ops"}})
    # a jump whose own entry has a ProxyJump: through bastion to inner, through inner to deep
    assert chain(i.host("db")) == [("10.0.0.3", 22, "ops"), ("10.0.0.2", 22, "in"), ("203.0.113.10", 2222, "jumper")]
    # `a,b`: through a to b, through b to the host
    assert chain(i.host("c")) == [("10.0.0.4", 22, "ops"), ("10.0.0.9", 2200, "u2"), ("203.0.113.10", 2222, "jumper")]


def test_proxyjump_naming_an_inventory_host_uses_it(tmp_path):
    config = "Host db.internal\n  HostName 10.1.1.1\n  ProxyJump gw\n"
    i = inventory(tmp_path, config, {"db": {"address": "db.internal", "user": "ops"}}, {"user": "u"})
    assert i.host("db").jump == "gw" and i.host("db").jump_host == i.host("gw")


def test_proxyjump_none_and_loops(tmp_path):
    config = "Host db.internal\n  ProxyJump none\n"
    assert inventory(tmp_path, config, {"db": {"address": "db.internal"}}, {"user": "u"}).host("db").jump is None
    loop = "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n"
    with pytest.raises(InventoryError, match="ProxyJump .* goes more than 8 hops deep"):
        inventory(tmp_path, loop, {"db": {"address": "a"}}, {"user": "u"})
    back = "Host gw.example\n  ProxyJump db\n"
    with pytest.raises(InventoryError, match="jump hosts loop through ssh_config ProxyJump"):
        inventory(tmp_path, back, {"db": {"address": "db.internal", "jump": "gw"}}, {"user": "u"})


def test_user_may_come_from_the_config_only(tmp_path):
    with pytest.raises(InventoryError, match=r"hosts.db.user.*no login user.*User in its ssh_config"):
        inventory(tmp_path, CONFIG, {"db": {"address": "elsewhere"}})


def test_explicit_ssh_config_must_exist_and_none_reads_nothing(tmp_path):
    with pytest.raises(InventoryError, match=r"ssh_defaults.ssh_config.*does not exist"):
        inventory(tmp_path, CONFIG, {"db": {"address": "db.internal"}}, {"ssh_config": "nope"})
    i = inventory(tmp_path, CONFIG, {"db": {"address": "db.internal"}}, {"ssh_config": "none", "user": "u"})
    assert i.host("db").address == "db.internal" and i.host("db").jump_host is None


def test_default_is_the_users_config_when_it_exists(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    (home / ".ssh" / "config").write_text("Host db.internal\n  HostName 10.9.9.9\n  User fromhome\n")
    i = inventory(tmp_path, "", {"db": {"address": "db.internal"}}, {"ssh_config": None, "user": "u"})
    assert i.host("db").address == "10.9.9.9" and i.host("db").user == "u"  # ssh_defaults' user wins


def test_system_known_hosts_are_read_too(tmp_path):
    i = inventory(tmp_path, CONFIG, {"db": {"address": "db.internal"}})
    with FakeSsh(Command("true")) as fake:
        pool = SshPool(client_factory=fake.client, user_known_hosts=None, system_known_hosts=str(tmp_path / "kh"))
        from drpoc_chaos.remote import run
        run(i.host("gw"), "true", pool=pool)
        assert str(tmp_path / "kh") in fake.connects[0].client.host_key_files
    assert SYSTEM_KNOWN_HOSTS == "/etc/ssh/ssh_known_hosts"
