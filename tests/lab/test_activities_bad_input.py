"""Bad input, against the real lab where it takes one: every expected failure is one ActivityFailed whose sentence
names the host (or file, or endpoint), the command and what to do — never a traceback.

Inventories are variants of the lab's, written to tmp_path. The product's connection pools are emptied around each
test: they are keyed by host name/address/port/user only, so a connection opened with the lab's inventory would
otherwise be reused by a variant (see test_pooled_connection_ignores_a_stricter_known_hosts).
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pymysql
import pytest
from chaoslib.exceptions import ActivityFailed
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drpoc_chaos import remote
from drpoc_chaos.drill import actions as drill_actions
from drpoc_chaos.inventory import load_inventory
from drpoc_chaos.lab import faults
from drpoc_chaos.lab.topology import MYSQL_PORT_BASE
from drpoc_chaos.replication import actions as rep_actions
from drpoc_chaos.replication import probes as rep_probes
from drpoc_chaos.services import context as activity_mod
from drpoc_chaos.services import gateway_helper
from drpoc_chaos.vpn import actions as vpn_actions
from drpoc_chaos.vpn import probes as vpn_probes

from .support import CFG, INVENTORY, variant

SOURCE_PORT, REPLICA_PORT = MYSQL_PORT_BASE, MYSQL_PORT_BASE + 1  # the lab's, as `drpoc lab up` publishes them

pytestmark = pytest.mark.lab

PASSWORD_FILE = Path("/var/lib/drpoc-lab/secrets/mysql_password")


# ----------------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(autouse=True)
def fresh_connections(monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # an agent must not log in for a refused key
    activity_mod.close_all()
    yield
    activity_mod.close_all()


def on_host(host: str, **changes):
    def mutate(data):
        data["hosts"][host].update(changes)
    return mutate


def clear(excinfo, *needles: str, limit: int = 700) -> str:
    """The failure is one actionable sentence: it holds every needle, no traceback, no chained exception."""
    exc = excinfo.value
    assert type(exc) is ActivityFailed, type(exc)
    msg = str(exc)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    assert "Traceback" not in msg and "\n" not in msg and len(msg) < limit, msg
    assert exc.__cause__ is None and (exc.__suppress_context__ or exc.__context__ is None), "chained exception"
    return msg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mysql(port: int) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=port, user="drpoc", password=PASSWORD_FILE.read_text().strip(),
                           database="testdb", autocommit=True, connect_timeout=5,
                           cursorclass=pymysql.cursors.DictCursor)


def msgs_with_id(port: int, row_id: int) -> list[str]:
    with mysql(port) as c, c.cursor() as cur:
        cur.execute("SELECT msg FROM ping WHERE id=%s", (row_id,))
        return [r["msg"] for r in cur.fetchall()]


def wait_replica_row(row_id: int, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    while not (got := msgs_with_id(REPLICA_PORT, row_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return got


def ping_table_alive(port: int) -> int:
    with mysql(port) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM testdb.ping")
        return cur.fetchone()["n"]


# ----------------------------------------------------------------------------------------------------------------
# the inventory


@pytest.mark.parametrize("call", [
    lambda: vpn_probes.tunnel_status("gcp", configuration=CFG),
    lambda: vpn_probes.tunnel_established("gcp", configuration=CFG),
    lambda: vpn_actions.tunnel_down(site="gcp", configuration=CFG),
    lambda: vpn_actions.tunnel_up(site="gcp", configuration=CFG),
], ids=["tunnel_status", "tunnel_established", "tunnel_down", "tunnel_up"])
def test_unknown_site(ready, call):
    with pytest.raises(ActivityFailed) as e:
        call()
    clear(e, INVENTORY, "no site 'gcp'", "use a role (fault, peer, source, replica) or one of the sites: aws, onprem")
    assert vpn_probes.tunnel_established("aws", configuration=CFG) is True  # nothing was done


def test_unknown_host_in_an_inventory(tmp_path):
    def mutate(data):
        data["sites"]["aws"]["gateway"]["host"] = "aws-gw"

    cfg = variant(tmp_path, "unknown-host", mutate)
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("aws", configuration=cfg)
    clear(e, cfg["inventory"], "sites.aws.gateway.host", "'aws-gw' is not a host of the inventory",
          "add it under `hosts` or use one of aws-db, aws-vpn, onprem-db, onprem-vpn")


def test_unknown_via_host_in_an_inventory(tmp_path):
    def mutate(data):
        data["sites"]["onprem"]["database"]["mysql"]["via"] = "bastion"

    cfg = variant(tmp_path, "unknown-via", mutate)
    with pytest.raises(ActivityFailed) as e:
        rep_probes.replica_status(configuration=cfg)
    clear(e, cfg["inventory"], "sites.onprem.database.mysql.via", "'bastion' is not a host of the inventory")


def test_missing_inventory_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ActivityFailed) as e:
        rep_probes.replica_status(configuration={"inventory": str(missing)})
    clear(e, str(missing), "no inventory file (from configuration key `inventory`)", "run `drpoc lab up`")


# ----------------------------------------------------------------------------------------------------------------
# SSH: unreachable, refused, sudo, host keys


def test_connection_refused(tmp_path):
    port = free_port()
    cfg = variant(tmp_path, "refused", on_host("aws-vpn", port=port))
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("aws", configuration=cfg)
    clear(e, f"connection refused by aws-vpn [127.0.0.1]:{port}", "is sshd running there",
          "Check `port` in the inventory")


def test_listener_that_never_answers_times_out_bounded(tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the TCP handshake; nobody ever says a word
        port = silent.getsockname()[1]
        cfg = variant(tmp_path, "silent", on_host("aws-vpn", port=port, connect_timeout=1))
        started = time.monotonic()
        with pytest.raises(ActivityFailed) as e:
            vpn_probes.tunnel_status("aws", configuration=cfg)
        elapsed = time.monotonic() - started
    clear(e, f"no SSH handshake from aws-vpn [127.0.0.1]:{port} within 1s", "is sshd (and not another service)",
          "Check `port` in the inventory")
    assert elapsed < 10, f"connect_timeout 1 s, yet it took {elapsed:.1f}s"


def test_command_timeout_is_bounded(ready, tmp_path, monkeypatch):
    """A gateway command that hangs (stood in for by `sleep 5`) is cut at the inventory's command_timeout."""
    real_run = gateway_helper.run

    def hanging_status(host, command, sudo=False, **kwargs):
        if list(command)[1:2] == ["status"]:
            return real_run(host, ["sleep", "5"], **kwargs)
        return real_run(host, command, sudo=sudo, **kwargs)

    monkeypatch.setattr(gateway_helper, "run", hanging_status)
    cfg = variant(tmp_path, "slow", on_host("aws-vpn", command_timeout=0.5))
    started = time.monotonic()
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("aws", configuration=cfg)
    assert time.monotonic() - started < 4
    clear(e, "aws-vpn: `sleep 5` timed out after 0.5s", "the remote command may still be running",
          "raise command_timeout")


def test_refused_authentication(ready, tmp_path):
    key = tmp_path / "id_stranger"
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    key.chmod(0o600)
    cfg = variant(tmp_path, "stranger", lambda d: d["ssh_defaults"].update(key_file=str(key)))
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("onprem", configuration=cfg)
    clear(e, "authentication refused for drpoc@onprem-vpn [127.0.0.1]:2203", f"key_file {key}",
          "~drpoc/.ssh/authorized_keys")


def test_missing_key_file(tmp_path):
    cfg = variant(tmp_path, "nokey", lambda d: d["ssh_defaults"].update(key_file=str(tmp_path / "gone")))
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("aws", configuration=cfg)
    clear(e, f"key_file {tmp_path / 'gone'} for drpoc@aws-vpn is missing or unreadable", "fix `key_file`")


@pytest.mark.parametrize("tool, command", [("ipsec", "/usr/local/sbin/drpoc-gw version"),
                                           ("swanctl", "/usr/local/sbin/drpoc-gw version")])
def test_sudo_that_asks_for_a_password(ready, tmp_path, tool, command):
    cfg = variant(tmp_path, "nosudo", lambda d: d["ssh_defaults"].update(user="drpoc-nosudo"))
    inv = load_inventory(cfg["inventory"])
    assert remote.run(inv.host("aws-vpn"), ["id", "-un"], check=True).stdout.strip() == "drpoc-nosudo"  # login ok
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("aws", tool=tool, configuration=cfg)
    clear(e, "sudo on aws-vpn asks for a password", f"give drpoc-nosudo passwordless sudo for `{command}`",
          "NOPASSWD: /usr/local/sbin/drpoc-gw", "/etc/sudoers.d/", "or log in as root with `sudo: false`")


def test_unknown_host_key(ready, tmp_path):
    user_known = Path.home() / ".ssh/known_hosts"
    if user_known.exists() and "[127.0.0.1]:2201" in user_known.read_text():
        pytest.skip("~/.ssh/known_hosts already trusts the lab (remote.py reads it too)")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    cfg = variant(tmp_path, "unknown-key", lambda d: d["ssh_defaults"].update(known_hosts=str(empty)))
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("aws", configuration=cfg)
    clear(e, "unknown host key for aws-vpn [127.0.0.1]:2201 (ssh-ed25519 SHA256:",
          f"ssh-keyscan -p 2201 127.0.0.1 >> {empty}", "after checking the fingerprint")


def test_changed_host_key(ready, tmp_path):
    pub = Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                                   serialization.PublicFormat.OpenSSH).decode()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:2201 {pub}\n")
    cfg = variant(tmp_path, "changed-key", lambda d: d["ssh_defaults"].update(known_hosts=str(wrong)))
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("aws", configuration=cfg)
    clear(e, "host key of aws-vpn [127.0.0.1]:2201 does not match", "ssh-keygen -R '[127.0.0.1]:2201'",
          "otherwise do not connect")


def test_pooled_connection_ignores_a_stricter_known_hosts(ready, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    strict = variant(tmp_path, "strict", lambda d: d["ssh_defaults"].update(known_hosts=str(empty)))
    assert vpn_probes.tunnel_status("aws", configuration=CFG)["host"] == "aws-vpn"  # pools a trusted connection
    with pytest.raises(ActivityFailed, match="unknown host key"):
        vpn_probes.tunnel_status("aws", configuration=strict)


# ----------------------------------------------------------------------------------------------------------------
# output that cannot be read


@pytest.mark.parametrize("tool", ["ipsec", "swanctl"])
def test_a_gateway_that_is_not_a_gateway(ready, tmp_path, tool):
    """An inventory whose AWS gateway is the database host: no helper (and no charon) there. The drill stops at the
    helper check, naming the host and how to install it."""
    cfg = variant(tmp_path, "gw-is-db", lambda d: d["sites"]["aws"]["gateway"].update(host="aws-db"))
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("aws", tool=tool, configuration=cfg)
    clear(e, "aws-db", "gateway helper /usr/local/sbin/drpoc-gw is not installed", "drpoc gateway-helper",
          "NOPASSWD: /usr/local/sbin/drpoc-gw")


@pytest.mark.parametrize("tool", ["ipsec", "swanctl"])
def test_status_tool_on_a_gateway_without_charon_says_what_to_do(ready, monkeypatch, tool):
    """The status command on a gateway where strongSwan's daemon does not answer (stood in for by what the tool
    prints then, on the real gateway over SSH): "is charon running?", with the exit status."""
    real_run = gateway_helper.run
    said = "failed to connect to stroke socket 'unix:///var/run/charon.ctl'" if tool == "ipsec" else \
        "Error: connecting to 'default' URI failed: No such file or directory"

    def charon_gone(host, command, sudo=False, **kwargs):
        if list(command)[1:2] == ["status"]:
            return real_run(host, ["sh", "-c", f'echo "{said}" >&2; exit 1'], **kwargs)
        return real_run(host, command, sudo=sudo, **kwargs)

    monkeypatch.setattr(gateway_helper, "run", charon_gone)
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("aws", tool=tool, configuration=CFG)
    clear(e, "aws-vpn", "exit", "is strongSwan's charon running on this gateway?")


def test_output_that_is_not_a_status(ready, monkeypatch):
    """The parser path on real output: the helper's `version` (exit 0) read as if it were `ipsec statusall`."""
    real_run = gateway_helper.run

    def version_as_status(host, command, sudo=False, **kwargs):
        command = list(command)
        if command[1:2] == ["status"]:
            command = [command[0], "version"]
        return real_run(host, command, sudo=sudo, **kwargs)

    monkeypatch.setattr(gateway_helper, "run", version_as_status)
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("aws", configuration=CFG)
    clear(e, "tunnel_status: aws-vpn: could not read `ipsec statusall`", "line 1",
          "no 'Security Associations (N up, M connecting):' line", "Hint:")


def test_unknown_status_tool(ready):
    with pytest.raises(ActivityFailed) as e:
        vpn_probes.tunnel_status("aws", tool="vici", configuration=CFG)
    clear(e, "tunnel_status: unknown status tool 'vici': use 'ipsec' or 'swanctl'")


# ----------------------------------------------------------------------------------------------------------------
# MySQL


def test_wrong_password_file(ready, tmp_path):
    wrong = tmp_path / "mysql_password"
    wrong.write_text("not-the-password-Zq9\n")
    cfg = variant(tmp_path, "wrong-pw", lambda d: d["mysql_defaults"].update(password={"file": str(wrong)}))
    with pytest.raises(ActivityFailed) as e:
        rep_probes.replica_status(configuration=cfg)
    msg = clear(e, f"MySQL replica (onprem) 127.0.0.1:{REPLICA_PORT}: CONNECT failed: (1045) Access denied",
                f"check the password reference (file {wrong})", "user drpoc exists")
    assert "not-the-password-Zq9" not in msg
    with pytest.raises(ActivityFailed) as e:
        rep_actions.write_ping(msg="t-bad-input:wrong-pw", configuration=cfg)
    clear(e, f"MySQL source (aws) 127.0.0.1:{SOURCE_PORT}: CONNECT failed: (1045)")


def test_missing_password_file(tmp_path):
    cfg = variant(tmp_path, "no-pw", lambda d: d["mysql_defaults"].update(password={"file": str(tmp_path / "x")}))
    with pytest.raises(ActivityFailed) as e:
        rep_probes.replica_status(configuration=cfg)
    clear(e, f"password file {tmp_path / 'x'} does not exist", "create it (mode 0600)")


def test_mysql_port_with_nothing_listening(ready, tmp_path):
    port = free_port()
    cfg = variant(tmp_path, "no-mysql", lambda d: d["sites"]["onprem"]["database"]["mysql"].update(port=port))
    with pytest.raises(ActivityFailed) as e:
        rep_probes.replica_status(configuration=cfg)
    clear(e, f"MySQL replica (onprem) 127.0.0.1:{port}: CONNECT failed: (2003)", "is the lab up")


def test_direct_tcpip_to_a_closed_port(ready, tmp_path):
    def mutate(data):
        data["sites"]["onprem"]["database"]["mysql"] = {"address": "127.0.0.1", "port": 3399, "via": "onprem-db"}

    cfg = variant(tmp_path, "via-closed", mutate)
    with pytest.raises(ActivityFailed) as e:
        rep_probes.replica_status(configuration=cfg)
    clear(e, "MySQL replica (onprem) 127.0.0.1:3399 via onprem-db: CONNECT failed",
          "onprem-db refused direct-tcpip to 127.0.0.1:3399", "AllowTcpForwarding")


def test_bad_table_argument_is_refused_and_drops_nothing(ready):
    before = ping_table_alive(SOURCE_PORT)
    with pytest.raises(ActivityFailed) as e:
        rep_probes.ping_rows_compare(table="testdb.ping; DROP TABLE testdb.ping", configuration=CFG)
    clear(e, "ping_rows_compare: table", "schema.table")
    assert ping_table_alive(SOURCE_PORT) >= before and ping_table_alive(REPLICA_PORT) > 0


def test_a_table_that_does_not_exist_is_a_mysql_error(ready):
    with pytest.raises(ActivityFailed) as e:
        rep_probes.ping_rows_compare(table="testdb.no_such_table", configuration=CFG)
    clear(e, f"MySQL source (aws) 127.0.0.1:{SOURCE_PORT}: SELECT failed: (1146)")


def test_syntax_error_hint_fits_the_statement(ready):
    with pytest.raises(ActivityFailed) as e:
        rep_probes.ping_rows_compare(table="testdb.ping; DROP TABLE testdb.ping", configuration=CFG)
    assert "SHOW REPLICA STATUS" not in str(e.value)


# ----------------------------------------------------------------------------------------------------------------
# write_ping's msg


@pytest.mark.parametrize("msg", [
    "x'); DROP TABLE testdb.ping; --",
    "'; DELETE FROM testdb.ping WHERE '1'='1",
    "%s %(msg)s \\' \\\\ \" ` ; -- #",
    "Robert'); DROP TABLE ping;/*",
])
def test_injection_strings_are_stored_verbatim(ready, msg):
    r = rep_actions.write_ping(msg=msg, configuration=CFG)
    assert r["msg"] == msg
    assert msgs_with_id(SOURCE_PORT, r["id"]) == [msg]
    assert wait_replica_row(r["id"]) == [msg]
    assert ping_table_alive(SOURCE_PORT) > 0 and ping_table_alive(REPLICA_PORT) > 0


def test_msg_of_exactly_50_characters_is_stored_whole(ready):
    msg = ("t-bad-input:50:" + "x" * 50)[:50]
    r = rep_actions.write_ping(msg=msg, configuration=CFG)
    assert msgs_with_id(SOURCE_PORT, r["id"]) == [msg]


@pytest.mark.parametrize("msg, needle", [
    ("y" * 51, "write_ping: msg is 51 characters; testdb.ping.msg holds 50"),
    ("t-bad-input:" + "z" * 200, "write_ping: msg is 212 characters; testdb.ping.msg holds 50"),
    ("", "write_ping: msg must be a non-empty string"),
    (12345, "write_ping: msg must be a non-empty string"),
])
def test_bad_msg_is_refused_before_writing(ready, msg, needle):
    with mysql(SOURCE_PORT) as c, c.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) AS m FROM ping")
        top = cur.fetchone()["m"]
    with pytest.raises(ActivityFailed) as e:
        rep_actions.write_ping(msg=msg, configuration=CFG)
    clear(e, needle)
    if isinstance(msg, str) and msg:
        with mysql(SOURCE_PORT) as c, c.cursor() as cur:
            cur.execute("SELECT COUNT(*) AS n FROM ping WHERE id > %s AND msg LIKE %s", (top, msg[:20] + "%"))
            assert cur.fetchone()["n"] == 0


def test_msg_outside_latin1_is_stored_verbatim(ready):
    """The lab's tables are utf8mb4 (as Debian's stock MariaDB config makes them): any text survives the trip."""
    msg = "t-unicode:\U0001F600 \u00fc\u00df"
    out = rep_actions.write_ping(msg=msg, wait_visible_seconds=10, configuration=CFG)
    assert out["msg"] == msg and out["visible_after"] >= 0


# ----------------------------------------------------------------------------------------------------------------
# arguments


@pytest.mark.parametrize("call, needle", [
    (lambda: vpn_actions.tunnel_up(site="aws", expect="maybe", configuration=CFG),
     "tunnel_up: expect must be 'up', 'down' or 'any'"),
    (lambda: rep_actions.wait_for_replica(state="Running", configuration=CFG),
     "wait_for_replica: state must be one of ['Connecting', 'No', 'Yes']"),
    (lambda: rep_actions.write_burst(configuration=CFG), "write_burst: give count, duration or until_event"),
    (lambda: rep_actions.write_burst(count=1, rate=0, configuration=CFG), "write_burst: rate must be positive"),
    (lambda: drill_actions.hold_outage(-1, configuration=CFG), "hold_outage: seconds must not be negative"),
], ids=["tunnel_up-expect", "wait_for_replica-state", "write_burst-bounds", "write_burst-rate",
        "hold_outage-negative"])
def test_bad_arguments(ready, call, needle):
    with pytest.raises(ActivityFailed) as e:
        call()
    clear(e, needle)


def test_lab_fault_on_an_inventory_that_is_not_the_lab(tmp_path):
    def prod(d):
        d.update(name="prod")
        d["hosts"]["aws-vpn"].update(address="203.0.113.10", port=22)

    cfg = variant(tmp_path, "prod", prod)
    for call in (faults.block_inbound_ike, faults.unblock_inbound_ike):
        with pytest.raises(ActivityFailed) as e:
            call(configuration=cfg)
        clear(e, cfg["inventory"], "is not the lab", "set `emulate_onprem_nat: false`")


def test_lab_fault_unknown_site(ready):
    with pytest.raises(ActivityFailed) as e:
        faults.block_inbound_ike(from_site="gcp", configuration=CFG)
    clear(e, "gcp")


def test_hold_outage_not_a_number():
    with pytest.raises(ActivityFailed) as e:
        drill_actions.hold_outage("soon")
    clear(e, "hold_outage")


def test_tunnel_down_of_a_connection_that_does_not_exist(ready):
    try:
        with pytest.raises(ActivityFailed) as e:
            vpn_actions.tunnel_down(site="aws", connection="onprem-aws-typo", configuration=CFG)
        clear(e, "onprem-aws-typo")
    finally:
        assert vpn_probes.tunnel_established("aws", configuration=CFG) is True  # `ipsec down <unknown>` is a no-op
