"""lab/configs.py and lab/topology.py: the text of every daemon's configuration and the lab's topology as data.
Pure: nothing here touches the machine."""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from drpoc_chaos.lab import configs, topology
from drpoc_chaos.lab.topology import (
    AWS_SUBNET,
    AWS_WAN_IP,
    CONNECTION,
    GATEWAYS,
    HOSTS,
    LINKS,
    LOGIN_UID,
    LOGIN_USER,
    MYSQL_DEFAULT_KNOBS,
    NOSUDO_UID,
    NOSUDO_USER,
    ONPREM_SUBNET,
    ONPREM_WAN_IP,
    REPLICA_IP,
    SOURCE_IP,
    Paths,
    ReplicaKnobs,
    enter_command,
    published_ports,
)


def settings(text: str) -> dict[str, str]:
    """key=value lines of an ipsec.conf `conn` block (indented), comments skipped."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


# ----------------------------------------------------------------------------------------------------------------
# strongSwan


@pytest.mark.parametrize("site, left, right, local, remote, auto", [
    ("aws", AWS_WAN_IP, ONPREM_WAN_IP, AWS_SUBNET, ONPREM_SUBNET, "add"),       # AWS only answers
    ("onprem", ONPREM_WAN_IP, AWS_WAN_IP, ONPREM_SUBNET, AWS_SUBNET, "start"),  # on-prem initiates
])
def test_ipsec_conf(site, left, right, local, remote, auto):
    text = configs.ipsec_conf(site)
    assert re.search(rf"^conn {CONNECTION}$", text, re.M)
    assert CONNECTION == "onprem-aws"
    s = settings(text)
    assert s["left"] == left and s["leftid"] == left
    assert s["right"] == right and s["rightid"] == right
    assert s["leftsubnet"] == local and s["rightsubnet"] == remote
    assert s["auto"] == auto
    assert s["keyexchange"] == "ikev2" and s["authby"] == "psk"
    assert s["dpdaction"] == "restart" and s["keyingtries"] == "1"
    assert s["ike"].endswith("!") and s["esp"].endswith("!")  # strict proposals, the same on both sides
    assert GATEWAYS[site]["host"] in text


def test_ipsec_conf_sides_mirror_each_other():
    aws, onprem = settings(configs.ipsec_conf("aws")), settings(configs.ipsec_conf("onprem"))
    assert aws["leftsubnet"] == onprem["rightsubnet"] and aws["rightsubnet"] == onprem["leftsubnet"]
    assert aws["left"] == onprem["right"] and aws["right"] == onprem["left"]
    for key in ("ike", "esp", "keyexchange", "authby", "forceencaps"):
        assert aws[key] == onprem[key], key
    assert {aws["auto"], onprem["auto"]} == {"add", "start"}  # exactly one initiator: no NO_PROPOSAL_CHOSEN race


def test_ipsec_conf_unknown_site():
    with pytest.raises(KeyError):
        configs.ipsec_conf("gcp")


@pytest.mark.parametrize("site, me, peer", [("aws", AWS_WAN_IP, ONPREM_WAN_IP), ("onprem", ONPREM_WAN_IP,
                                                                                  AWS_WAN_IP)])
def test_ipsec_secrets_holds_the_psk(site, me, peer):
    text = configs.ipsec_secrets(site, "s3cr3t-psk")
    assert text == f'{me} {peer} : PSK "s3cr3t-psk"\n'


@pytest.mark.parametrize("libipsec, load", [(True, "yes"), (False, "no")])
def test_strongswan_conf_switches_libipsec(libipsec, load):
    text = configs.strongswan_conf(libipsec)
    block = re.search(r"kernel-libipsec \{\s*load = (\w+)\s*\}", text)
    assert block and block.group(1) == load
    assert "path = /run/charon.log" in text
    assert "retransmit_tries = 3" in text
    assert text.count("{") == text.count("}")


# ----------------------------------------------------------------------------------------------------------------
# MariaDB


def cnf(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def test_my_cnf_source():
    text = configs.mariadb_cnf("aws-db", "/data/aws-db", 1, "source", ReplicaKnobs())
    c = cnf(text)
    assert c["server_id"] == "1" and c["datadir"] == "/data/aws-db"
    assert c["log_bin"] == "mysql-bin" and c["binlog_format"] == "ROW" and c["gtid_strict_mode"] == "1"
    assert c["bind-address"] == "0.0.0.0"
    for replica_only in ("relay_log", "slave_net_timeout", "read_only"):
        assert replica_only not in c, replica_only
    assert "[mysqld]" in text and "MariaDB source on aws-db" in text


def test_my_cnf_replica_carries_the_knobs():
    knobs = ReplicaKnobs(net_timeout=9, heartbeat_period=2.0, connect_retry=3)
    c = cnf(configs.mariadb_cnf("onprem-db", "/data/onprem-db", 2, "replica", knobs))
    assert c["server_id"] == "2"
    assert c["slave_net_timeout"] == "9" and c["read_only"] == "1" and c["relay_log"] == "relay-bin"


def test_server_ids_differ():
    assert topology.DATABASES["aws"]["server_id"] != topology.DATABASES["onprem"]["server_id"]
    assert topology.DATABASES["aws"]["role"] == "source" and topology.DATABASES["onprem"]["role"] == "replica"


def test_replica_bootstrap_and_knobs_sql():
    knobs = ReplicaKnobs(net_timeout=4, heartbeat_period=1.0, connect_retry=1)
    boot = configs.replica_bootstrap_sql(SOURCE_IP, "replpw", knobs)
    assert f"MASTER_HOST='{SOURCE_IP}'" in boot and "MASTER_USE_GTID=slave_pos" in boot
    assert "MASTER_CONNECT_RETRY=1" in boot and "MASTER_HEARTBEAT_PERIOD=1.0" in boot
    assert "SET GLOBAL slave_net_timeout=4;" in boot
    assert boot.startswith("STOP SLAVE;") and boot.rstrip().endswith("START SLAVE;")
    again = configs.replica_knobs_sql(MYSQL_DEFAULT_KNOBS)
    assert "MASTER_CONNECT_RETRY=60" in again and "slave_net_timeout=60" in again
    assert "MASTER_HOST" not in again and "PASSWORD" not in again  # position and credentials untouched


def test_source_bootstrap_creates_the_seed_table_and_heartbeat():
    text = configs.source_bootstrap_sql("dbpw", "replpw")
    assert "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'" in text
    assert "msg VARCHAR(50)" in text  # the seed's table, which write_ping's 50-character check mirrors
    assert "CREATE TABLE IF NOT EXISTS drpoc.heartbeat" in text


# ----------------------------------------------------------------------------------------------------------------
# users, sudo, sshd


PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          "drpoc:x:999:999:stale:/nowhere:/bin/sh\n")
GROUP = "root:x:0:\ndaemon:x:1:\ndrpoc:x:999:\n"


def test_user_database_adds_the_two_lab_users():
    passwd, group, shadow = configs.user_database(PASSWD, GROUP, "/var/lib/drpoc-lab/home")
    users = {line.split(":")[0]: line.split(":") for line in passwd.splitlines()}
    assert set(users) == {"root", "daemon", LOGIN_USER, NOSUDO_USER}
    assert users[LOGIN_USER][2:4] == [str(LOGIN_UID)] * 2
    assert users[LOGIN_USER][5] == f"/var/lib/drpoc-lab/home/{LOGIN_USER}"
    assert users[NOSUDO_USER][2:4] == [str(NOSUDO_UID)] * 2
    assert users[LOGIN_USER][6] == users[NOSUDO_USER][6] == "/bin/bash"
    assert "stale" not in passwd and passwd.count(f"\n{LOGIN_USER}:") == 1  # the machine's stale entry is replaced
    groups = {line.split(":")[0]: line.split(":") for line in group.splitlines()}
    assert groups[LOGIN_USER][2] == str(LOGIN_UID) and groups[NOSUDO_USER][2] == str(NOSUDO_UID)
    assert "999" not in group
    assert passwd.endswith("\n") and group.endswith("\n") and shadow.endswith("\n")


def test_user_database_shadow_has_no_usable_password():
    passwd, _, shadow = configs.user_database(PASSWD, GROUP, "/home")
    entries = [line.split(":") for line in shadow.splitlines()]
    assert [e[0] for e in entries] == [line.split(":")[0] for line in passwd.splitlines()]
    assert all(e[1] == "*" for e in entries)
    assert all(len(e) == 9 for e in entries)


def test_sudoers_gives_the_drill_user_the_gateway_helper_and_nothing_else():
    """The lab grants exactly the rule docs/REAL_HOSTS.md documents: no shell, no setsid, no ALL."""
    text = configs.sudoers()
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    mine = [line for line in rules if line.startswith(LOGIN_USER + " ")]
    assert mine == [f"{LOGIN_USER} ALL=(root) NOPASSWD: /usr/local/sbin/drpoc-gw"]
    documented = (Path(__file__).resolve().parents[2] / "docs" / "REAL_HOSTS.md").read_text()
    assert "drpoc ALL=(root) NOPASSWD: /usr/local/sbin/drpoc-gw" in documented
    nosudo = [line for line in rules if line.startswith(NOSUDO_USER + " ")]
    assert nosudo and "NOPASSWD" not in nosudo[0]


def test_sshd_config_is_key_only():
    text = configs.sshd_config("/k/host_key", "/k/authorized_keys")
    assert "PasswordAuthentication no" in text and "KbdInteractiveAuthentication no" in text
    assert "PermitRootLogin prohibit-password" in text
    assert "HostKey /k/host_key" in text and "AuthorizedKeysFile /k/authorized_keys" in text


def test_hosts_file_names_the_databases():
    text = configs.hosts_file("onprem-vpn")
    assert f"{SOURCE_IP}\taws-db" in text and f"{REPLICA_IP}\tonprem-db" in text and "onprem-vpn" in text


def test_wan_counters_nft_has_the_ike_block_set():
    text = configs.wan_counters_nft()
    assert "set ike_init_blocked" in text and "flags timeout" in text
    assert 'counter name "ike_init_dropped" drop' in text


# ----------------------------------------------------------------------------------------------------------------
# topology


def test_replica_knobs_validate():
    ReplicaKnobs().validate()
    MYSQL_DEFAULT_KNOBS.validate()
    ReplicaKnobs(net_timeout=1, heartbeat_period=1, connect_retry=1).validate()  # bounds are inclusive


@pytest.mark.parametrize("knobs, message", [
    (ReplicaKnobs(net_timeout=0), "net timeout"),
    (ReplicaKnobs(heartbeat_period=0), "heartbeat period"),
    (ReplicaKnobs(heartbeat_period=-1), "heartbeat period"),
    (ReplicaKnobs(net_timeout=4, heartbeat_period=4.5), "heartbeat period"),
    (ReplicaKnobs(connect_retry=0), "connect retry"),
])
def test_replica_knobs_refuse_nonsense(knobs, message):
    with pytest.raises(ValueError, match=message):
        knobs.validate()


def test_lab_defaults_are_fast_and_mysql_defaults_are_mysqls():
    assert ReplicaKnobs() == ReplicaKnobs(net_timeout=4, heartbeat_period=1.0, connect_retry=1)
    assert MYSQL_DEFAULT_KNOBS == ReplicaKnobs(net_timeout=60, heartbeat_period=30, connect_retry=60)


def test_published_ports_are_distinct():
    ports = published_ports()
    outside = [p for p, _, _ in ports]
    assert len(outside) == len(set(outside))
    assert len(ports) == len(set(ports))
    assert all(1024 < p <= 65535 for p in outside)
    by_host = {(h, inner): p for p, h, inner in ports}
    assert by_host[("aws-vpn", 22)] == topology.SSH_PORT_BASE
    assert {h for h, inner in by_host if inner == 22} == {"aws-vpn", "aws-db", "onprem-vpn", "onprem-db"}
    assert {h for h, inner in by_host if inner == 3306} == {"aws-db", "onprem-db"}
    assert "wan" not in {h for _, h, _ in ports}


def test_published_ports_match_the_lab_inventory_defaults():
    ports = {(h, inner): p for p, h, inner in published_ports()}
    if topology.SSH_PORT_BASE == 2201 and topology.MYSQL_PORT_BASE == 13306:
        assert ports == {("aws-vpn", 22): 2201, ("aws-db", 22): 2202, ("aws-db", 3306): 13306,
                         ("onprem-vpn", 22): 2203, ("onprem-db", 22): 2204, ("onprem-db", 3306): 13307}


def test_gateways_and_links_are_consistent():
    assert GATEWAYS["aws"]["local"] == GATEWAYS["onprem"]["remote"] == AWS_SUBNET
    assert GATEWAYS["onprem"]["local"] == GATEWAYS["aws"]["remote"] == ONPREM_SUBNET
    assert ipaddress.ip_address(SOURCE_IP) in ipaddress.ip_network(AWS_SUBNET)
    assert ipaddress.ip_address(REPLICA_IP) in ipaddress.ip_network(ONPREM_SUBNET)
    names = {h.name for h in HOSTS}
    assert names == {"wan", "aws-vpn", "aws-db", "onprem-vpn", "onprem-db"}
    for link in LINKS:
        assert link.a_host in names and link.b_host in names
        ipaddress.ip_interface(link.a_addr), ipaddress.ip_interface(link.b_addr)
        assert ipaddress.ip_interface(link.a_addr).network == ipaddress.ip_interface(link.b_addr).network
    # the WAN uses documentation ranges only: no lab address can be a real one
    for ip in (AWS_WAN_IP, ONPREM_WAN_IP):
        assert any(ipaddress.ip_address(ip) in ipaddress.ip_network(n)
                   for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))


def test_enter_command():
    p = Paths(run=topology.Path("/run/x"))
    assert enter_command("wan", p) == ["nsenter", "--net=/run/netns/wan", "--"]
    assert enter_command("aws-vpn", p) == ["nsenter", "--net=/run/netns/aws-vpn", "--mount=/run/x/ns/aws-vpn.mnt",
                                           "--uts=/run/x/ns/aws-vpn.uts", "--wd=/", "--"]


def test_lab_hostnames():
    assert configs.lab_hostnames() == [h.name for h in HOSTS]
