"""The lab against the seed runbook: real strongSwan, MariaDB replication and sshd in network namespaces."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pymysql
import pytest

from drpoc_chaos.lab.topology import MYSQL_PORT_BASE, Paths
from drpoc_chaos.vpn.status import parse_ipsec_statusall

SOURCE_PORT, REPLICA_PORT = MYSQL_PORT_BASE, MYSQL_PORT_BASE + 1  # the lab's, as `drpoc lab up` publishes them

pytestmark = pytest.mark.lab
DRPOC = [sys.executable, "-m", "drpoc_chaos.cli"]


def drpoc(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(DRPOC + list(args), capture_output=True, text=True, check=check, timeout=timeout)


def on(host: str, *cmd: str, input: str | None = None) -> str:
    return subprocess.run(DRPOC + ["lab", "exec", host, "--", *cmd], capture_output=True, text=True, check=True,
                          input=input, timeout=30).stdout


def ssh(user: str, port: int, command: str) -> subprocess.CompletedProcess:
    p = Paths()
    return subprocess.run(["ssh", "-i", str(p.client_key), "-o", f"UserKnownHostsFile={p.known_hosts}",
                           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                           "-p", str(port), f"{user}@127.0.0.1", command],
                          capture_output=True, text=True, timeout=30)


def db(port: int) -> pymysql.connections.Connection:
    password = (Paths().secrets / "mysql_password").read_text().strip()
    return pymysql.connect(host="127.0.0.1", port=port, user="drpoc", password=password, database="testdb",
                           autocommit=True, connect_timeout=5, cursorclass=pymysql.cursors.DictCursor)


def replica_status() -> dict:
    with db(REPLICA_PORT) as c, c.cursor() as cur:
        cur.execute("SHOW REPLICA STATUS")
        return cur.fetchone()


def wait_for(predicate, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def test_status_json_reports_both_sas_and_replica_threads(healthy_lab):
    out = drpoc("lab", "status", "--json")
    st = json.loads(out.stdout)
    assert st["up"] and st["healthy"], st["problems"]
    assert st["tunnels"]["aws-vpn"]["state"] == "up"
    assert st["tunnels"]["onprem-vpn"]["state"] == "up"
    assert st["replica"]["io"] == "Yes" and st["replica"]["sql"] == "Yes"
    assert st["esp_mode"] in ("kernel", "libipsec")
    assert all(st["daemons"].values()), st["daemons"]


def test_status_table_is_readable(healthy_lab):
    out = drpoc("lab", "status").stdout
    assert "tunnel up" in out and "replica IO=Yes SQL=Yes" in out and "127.0.0.1" in out


def test_seed_checks_on_both_gateways(healthy_lab):
    for host, ts in (("aws-vpn", "10.20.0.0/16 === 192.168.64.0/24"),
                     ("onprem-vpn", "192.168.64.0/24 === 10.20.0.0/16")):
        out = on(host, "ipsec", "statusall")
        assert "ESTABLISHED" in out and "INSTALLED" in out and ts in out
        assert on(host, "hostname").strip() == host
    sas = on("aws-vpn", "swanctl", "--list-sas")
    assert "ESTABLISHED" in sas and "INSTALLED" in sas


def test_operator_commands_over_ssh_as_sudo_user_and_root(healthy_lab):
    # the drill user's one sudo rule is the gateway helper; root sees everything
    r = ssh("drpoc", 2201, "sudo -n /usr/local/sbin/drpoc-gw status ipsec")
    assert r.returncode == 0, r.stderr
    assert "INSTALLED" in r.stdout and "10.20.0.0/16 === 192.168.64.0/24" in r.stdout
    r = ssh("drpoc", 2201, "sudo -n ipsec statusall")
    assert r.returncode != 0 and "password is required" in r.stderr
    r = ssh("root", 2201, "ipsec statusall")
    assert r.returncode == 0 and "INSTALLED" in r.stdout, r.stderr
    r = ssh("drpoc", 2203, "hostname; id -un")
    assert r.stdout.split() == ["onprem-vpn", "drpoc"]
    r = ssh("root", 2204, "mariadb -e 'SHOW REPLICA STATUS\\G'")
    assert r.returncode == 0, r.stderr
    assert "Slave_IO_Running: Yes" in r.stdout and "Master_Host: 10.20.11.123" in r.stdout


def test_sudo_that_wants_a_password_fails_fast(healthy_lab):
    r = ssh("drpoc-nosudo", 2201, "sudo -n ipsec statusall")
    assert r.returncode != 0 and "password is required" in r.stderr


def test_ssh_is_key_only(healthy_lab):
    p = Paths()
    r = subprocess.run(["ssh", "-o", f"UserKnownHostsFile={p.known_hosts}", "-o", "BatchMode=yes",
                        "-o", "PreferredAuthentications=password", "-p", "2201", "drpoc@127.0.0.1", "true"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 255 and "Permission denied" in r.stderr


def test_row_on_source_appears_on_replica(healthy_lab):
    with db(SOURCE_PORT) as src, src.cursor() as cur:
        cur.execute("INSERT INTO ping (msg) VALUES ('replication_test_1')")
        row_id = cur.lastrowid

    def seen():
        with db(REPLICA_PORT) as rep, rep.cursor() as cur:
            cur.execute("SELECT msg FROM ping WHERE id=%s", (row_id,))
            return cur.fetchone()

    assert wait_for(seen, 5) == {"msg": "replication_test_1"}


def test_no_route_from_root_namespace_and_nothing_but_loopback(healthy_lab):
    routes = subprocess.run(["ip", "route", "get", "10.20.11.123"], capture_output=True, text=True).stdout
    assert "drpoc" not in routes and "10.20.11.10" not in routes
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    for port in (2201, 2202, 2203, 2204, SOURCE_PORT, REPLICA_PORT):
        lines = [line for line in listening.splitlines() if f":{port} " in line]
        assert lines and all("127.0.0.1:" in line for line in lines), lines
    for host in ("aws-vpn", "aws-db", "onprem-vpn", "onprem-db", "wan"):
        links = subprocess.run(["ip", "-n", host, "-o", "link"], capture_output=True, text=True).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            assert name in ("lo", "wan0", "lan0", "eth0", "aws0", "onprem0", "ipsec0"), line


def test_outage_silent_drop_then_seed_recovery(healthy_lab):
    """The seed's drill by hand: ipsec down on AWS -> IO Connecting with errno 110 (never no-route); a row written
    during the outage arrives after the seed's recovery order; the WAN saw only UDP 500/4500."""
    knobs = json.loads(Paths().lab_json.read_text())["knobs"]
    before = healthy_lab.wan_counters()
    on("aws-vpn", "ipsec", "down", "onprem-aws")
    try:
        t0 = time.monotonic()
        with db(SOURCE_PORT) as src, src.cursor() as cur:
            cur.execute("INSERT INTO ping (msg) VALUES ('replication_test_while_vpn_down')")
            during_id = cur.lastrowid
        st = wait_for(lambda: (s := replica_status())["Slave_IO_Running"] == "Connecting" and s,
                      knobs["net_timeout"] + 5)
        detected = time.monotonic() - t0
        assert st, "replica never noticed the outage"
        assert st["Slave_SQL_Running"] == "Yes" and st["Seconds_Behind_Master"] is None
        st = wait_for(lambda: (s := replica_status())["Last_IO_Errno"] == 2003 and s, 2 * knobs["net_timeout"] + 5)
        assert st, "no connect error shown"
        assert '(110 "Connection timed out")' in st["Last_IO_Error"], st["Last_IO_Error"]
        assert "No route" not in st["Last_IO_Error"]
        assert detected <= knobs["net_timeout"] + 3
        # the private subnets cannot reach each other: a TCP connect from the replica host times out (silent drop)
        r = subprocess.run(DRPOC + ["lab", "exec", "onprem-db", "--", "timeout", "3", "bash", "-c",
                                    "exec 3<>/dev/tcp/10.20.11.123/3306"], capture_output=True, text=True)
        assert r.returncode == 124, r.stderr  # timeout(1) killed it: no RST, no ICMP
    finally:
        # the seed's proven recovery order
        on("aws-vpn", "ipsec", "down", "onprem-aws")
        on("onprem-vpn", "ipsec", "down", "onprem-aws")
        on("onprem-vpn", "ipsec", "up", "onprem-aws")
        on("aws-vpn", "ipsec", "up", "onprem-aws")
        # the seed's trap: that second `up` may say "failed" although the tunnel is up — judge by status only
        for host in ("aws-vpn", "onprem-vpn"):
            st = parse_ipsec_statusall(on(host, "ipsec", "statusall"))
            assert st.tunnel_state("onprem-aws") == "up", host
    assert wait_for(lambda: replica_status()["Slave_IO_Running"] == "Yes", 15)

    def arrived():
        with db(REPLICA_PORT) as rep, rep.cursor() as cur:
            cur.execute("SELECT msg FROM ping WHERE id=%s", (during_id,))
            return cur.fetchone()

    assert wait_for(arrived, 10) == {"msg": "replication_test_while_vpn_down"}
    after = healthy_lab.wan_counters()
    assert after["tcp_3306"]["packets"] == before["tcp_3306"]["packets"] == 0
    assert after["udp_4500"]["packets"] > before["udp_4500"]["packets"]
    assert after["udp_500"]["packets"] > before["udp_500"]["packets"]  # the re-keyed IKE_SA_INIT
