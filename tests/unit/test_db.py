"""db.py: error mapping (pure), connection plumbing without a database. Real queries are tested against the lab."""
from __future__ import annotations

import socket
import struct
import threading

import pymysql
import pytest

from drpoc_chaos import db, remote
from drpoc_chaos.db import DbError, DbPool, db_error, sql_verb
from drpoc_chaos.inventory import InventoryError, MysqlEndpoint, SshHost

PASSWORD = "pw-Zq81-never-shown"


def endpoint(**overrides) -> MysqlEndpoint:
    values = dict(site="aws", role="source", host="aws-db", address="127.0.0.1", port=13306, user="drpoc",
                  password_ref={"env": "DRPOC_TEST_MYSQL_PW"}, database="testdb", connect_timeout=2.0, via=None)
    values.update(overrides)
    return MysqlEndpoint(**values)


class FakeInventory:
    """Just what db.connect() asks of an Inventory."""

    def __init__(self, **hosts: SshHost):
        self.hosts = hosts

    def host(self, name):
        return self.hosts[name]


@pytest.fixture(autouse=True)
def _password(monkeypatch):
    monkeypatch.setenv("DRPOC_TEST_MYSQL_PW", PASSWORD)


def closed_port() -> int:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


# --- sql_verb -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql, verb", [
    ("SELECT 1", "SELECT"),
    ("  insert into ping(msg) values (%s)", "INSERT"),
    ("SHOW REPLICA STATUS", "SHOW REPLICA"),
    ("show slave status", "SHOW SLAVE"),
    ("STOP REPLICA;", "STOP REPLICA"),
    ("/* drill */ START REPLICA", "START REPLICA"),
    ("-- note\nCREATE TABLE IF NOT EXISTS ping (id INT)", "CREATE TABLE"),
    ("", "SQL"),
])
def test_sql_verb(sql, verb):
    assert sql_verb(sql) == verb


# --- error mapping (pure) -------------------------------------------------------------------------------------


def mapped(code, text, verb="CONNECT", **kw) -> DbError:
    exc = pymysql.err.OperationalError(code, text)
    return db_error(exc, endpoint(**kw), verb, PASSWORD)


def test_access_denied_points_at_the_password_reference():
    error = mapped(1045, "Access denied for user 'drpoc'@'172.17.0.1' (using password: YES)")
    message = str(error)
    assert message.startswith("MySQL source (aws) 127.0.0.1:13306: CONNECT failed: (1045) Access denied")
    assert "check the password reference (environment variable DRPOC_TEST_MYSQL_PW)" in message
    assert (error.code, error.verb, error.endpoint.role) == (1045, "CONNECT", "source")
    assert PASSWORD not in message


def test_cannot_connect_asks_whether_the_lab_is_up():
    message = str(mapped(2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)"))
    assert "(2003)" in message and "is the lab up (`drpoc lab status`)" in message
    assert "127.0.0.1:13306 published" in message


def test_cannot_connect_via_ssh_says_from_where():
    message = str(mapped(2003, "Can't connect", via="aws-db", port=3306))
    assert "MySQL source (aws) 127.0.0.1:3306 via aws-db" in message and "as seen from aws-db" in message


@pytest.mark.parametrize("code, text, verb, fix", [
    (1044, "Access denied for user 'drpoc'@'%' to database 'testdb'", "CONNECT", "grant drpoc privileges on testdb"),
    (1049, "Unknown database 'testdb'", "CONNECT", "create database testdb on the source"),
    (1130, "Host '10.0.0.5' is not allowed to connect", "CONNECT", "create drpoc for this client's host"),
    (1227, "Access denied; you need (at least one of) the SUPER, REPLICATION CLIENT privilege(s)", "SHOW REPLICA",
     "REPLICATION CLIENT for SHOW REPLICA STATUS"),
    (1146, "Table 'testdb.ping' doesn't exist", "INSERT", "create the table"),
    (1064, "You have an error in your SQL syntax ... near 'REPLICA STATUS'", "SHOW REPLICA", "SHOW SLAVE STATUS"),
    (1290, "The MariaDB server is running with the --read-only option", "INSERT", "the server is read-only"),
    (2013, "Lost connection to MySQL server during query ([Errno 110] Connection timed out)", "SELECT",
     "VPN down? read_timeout 30s exceeded?"),
    (2006, "MySQL server has gone away", "SELECT", "reconnect and retry"),
    (1213, "Deadlock found when trying to get lock", "UPDATE", "retry the statement"),
    (9999, "something new", "SELECT", "see the MySQL error reference for 9999"),
])
def test_error_fixes(code, text, verb, fix):
    error = mapped(code, text, verb)
    assert f"{verb} failed: ({code}) {text}: " in str(error)
    assert fix in str(error)


def test_connection_lost_codes():
    assert mapped(2013, "Lost connection").connection_lost
    assert mapped(2003, "Can't connect").connection_lost
    assert not mapped(1146, "no table").connection_lost


def test_password_is_masked_if_the_server_echoes_it():
    error = mapped(1064, f"syntax error near 'IDENTIFIED BY '{PASSWORD}''", "ALTER USER")
    assert PASSWORD not in str(error) and "***" in str(error)


def test_non_mysql_errors_are_named():
    error = db_error(pymysql.err.InterfaceError(0, ""), endpoint(), "SELECT")
    assert "(0)" in str(error) and "already closed: reconnect" in str(error)
    error = db_error(RuntimeError("boom"), endpoint(), "SELECT")
    assert "RuntimeError: boom" in str(error) and error.code is None


# --- connect() without a database -----------------------------------------------------------------------------


def test_connect_refused_is_a_db_error_without_the_password():
    ep = endpoint(port=closed_port())
    with pytest.raises(DbError) as caught:
        db.connect(ep, FakeInventory())
    assert caught.value.code == 2003 and caught.value.verb == "CONNECT"
    assert f"127.0.0.1:{ep.port}" in str(caught.value) and PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)


def test_connect_needs_the_secret_first(monkeypatch):
    monkeypatch.delenv("DRPOC_TEST_MYSQL_PW")
    with pytest.raises(InventoryError, match="DRPOC_TEST_MYSQL_PW is not set") as caught:
        db.connect(endpoint(port=closed_port()), FakeInventory())
    assert "sites.aws.database.mysql.password" in str(caught.value)


def err_packet(code: int, message: str) -> bytes:
    payload = b"\xff" + struct.pack("<H", code) + b"#HY000" + message.encode()
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload


def test_connect_via_hands_the_tunnel_to_pymysql(monkeypatch):
    """With `via`, PyMySQL talks over the channel open_tunnel returns (here: a socketpair whose far end answers
    like a server refusing the client's host)."""
    ours, theirs = socket.socketpair()
    opened = []

    def fake_tunnel(host, address, port, pool=None, timeout=None):
        opened.append((host.name, address, port, timeout))
        return ours

    monkeypatch.setattr(remote, "open_tunnel", fake_tunnel)
    threading.Thread(target=lambda: theirs.sendall(err_packet(1130, "Host 'x' is not allowed")), daemon=True).start()
    bastion = SshHost("aws-db", "127.0.0.1", 2202, "drpoc", True, None, None, 5.0, 30.0)
    with pytest.raises(DbError) as caught:
        db.connect(endpoint(via="aws-db", port=3306), FakeInventory(**{"aws-db": bastion}))
    theirs.close()
    assert opened == [("aws-db", "127.0.0.1", 3306, 2.0)]
    assert caught.value.code == 1130 and "via aws-db" in str(caught.value)
    assert ours.fileno() == -1  # closed after the failure


def test_connect_via_reports_tunnel_failures(monkeypatch):
    def refused(host, address, port, pool=None, timeout=None):
        raise remote.RemoteError(f"{host.name} refused direct-tcpip to {address}:{port} (Connect failed)",
                                 host=host.name)

    monkeypatch.setattr(remote, "open_tunnel", refused)
    bastion = SshHost("aws-db", "127.0.0.1", 2202, "drpoc", True, None, None, 5.0, 30.0)
    with pytest.raises(DbError) as caught:
        db.connect(endpoint(via="aws-db", port=3306), FakeInventory(**{"aws-db": bastion}))
    assert "MySQL source (aws) 127.0.0.1:3306 via aws-db: CONNECT failed: aws-db refused direct-tcpip" \
        in str(caught.value)
    assert isinstance(caught.value.__cause__, remote.RemoteError)


# --- DbPool and execute() with stand-in connections -----------------------------------------------------------


class FakeCursor:
    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=None):
        self.conn.executed.append((sql, args))
        if self.conn.fail_with is not None:
            raise self.conn.fail_with

    def fetchall(self):
        return ({"id": 1, "msg": "replication_test_1"},)


class FakeConnection:
    def __init__(self):
        self.alive = True
        self.closed = False
        self.executed = []
        self.fail_with = None

    def ping(self, reconnect=False):
        assert reconnect is False
        if not self.alive:
            raise pymysql.err.OperationalError(2006, "MySQL server has gone away")

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = True


@pytest.fixture
def fake_connect(monkeypatch):
    made = []

    def connect(ep, inventory, secrets=None, pool=None):
        made.append(FakeConnection())
        return made[-1]

    monkeypatch.setattr(db, "connect", connect)
    return made


def test_pool_reuses_a_live_connection_and_replaces_a_dead_one(fake_connect):
    pool = DbPool()
    first = pool.get(endpoint(), FakeInventory())
    assert pool.get(endpoint(), FakeInventory()) is first
    other = pool.get(endpoint(role="replica", site="onprem", port=13307), FakeInventory())
    assert other is not first and len(fake_connect) == 2
    first.alive = False
    second = pool.get(endpoint(), FakeInventory())
    assert second is not first and first.closed
    pool.close_all()
    assert second.closed and other.closed


def test_execute_returns_rows_and_maps_errors(fake_connect):
    pool = DbPool()
    rows = db.execute(endpoint(), FakeInventory(), "SELECT * FROM ping WHERE id = %s", (1,), pool=pool)
    assert rows == [{"id": 1, "msg": "replication_test_1"}]
    conn = fake_connect[0]
    assert conn.executed == [("SELECT * FROM ping WHERE id = %s", (1,))]
    conn.fail_with = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    with pytest.raises(DbError, match=r"SELECT failed: \(2013\)") as caught:
        db.execute(endpoint(), FakeInventory(), "SELECT 1", pool=pool)
    assert caught.value.connection_lost and conn.closed  # dropped from the pool
    db.execute(endpoint(), FakeInventory(), "SELECT 1", pool=pool)
    assert len(fake_connect) == 2


def test_execute_without_a_pool_closes_its_connection(fake_connect):
    db.execute(endpoint(), FakeInventory(), "SELECT 1")
    assert fake_connect[0].closed


def test_connect_via_a_real_ssh_tunnel(tmp_path):
    """PyMySQL reads and writes through a real paramiko channel (TinySshd's direct-tcpip to a stand-in server
    on 127.0.0.1 that refuses the client like MySQL does, with an ERR packet)."""
    from .fakessh import TinySshd

    mysqld = socket.create_server(("127.0.0.1", 0))

    def refuse():
        conn, _ = mysqld.accept()
        with conn:
            conn.sendall(err_packet(1130, "Host '127.0.0.1' is not allowed to connect to this MariaDB server"))

    threading.Thread(target=refuse, daemon=True).start()
    sshd = TinySshd()
    ssh_pool = remote.SshPool(user_known_hosts=None)
    try:
        key = tmp_path / "id_ed25519"
        key.write_text(sshd.client_pem)
        key.chmod(0o600)
        known = tmp_path / "known_hosts"
        known.write_text(sshd.known_hosts_line())
        host = SshHost("aws-db", "127.0.0.1", sshd.port, "drpoc", True, str(key), str(known), 5.0, 30.0)
        ep = endpoint(via="aws-db", port=mysqld.getsockname()[1])
        with pytest.raises(DbError) as caught:
            db.connect(ep, FakeInventory(**{"aws-db": host}), pool=ssh_pool)
    finally:
        ssh_pool.close_all()
        sshd.stop()
        mysqld.close()
    assert caught.value.code == 1130 and "is not allowed to connect" in str(caught.value)
    assert ("127.0.0.1", ep.port) in sshd.tunnels


def test_connect_via_never_asks_pymysql_for_tls(monkeypatch):
    """PyMySQL tries TLS by itself when a server offers it, and Python's ssl cannot wrap a paramiko channel
    ('Channel' object has no attribute 'getsockopt', seen on the lab once its MariaDB had TLS): through SSH the
    channel is the encryption, so TLS is switched off for `via` and left to PyMySQL's default otherwise."""
    made = []

    class FakeConnection:
        def __init__(self, **kwargs):
            made.append(kwargs)

        def connect(self, sock=None):
            pass

    monkeypatch.setattr(db.pymysql.connections, "Connection", FakeConnection)
    monkeypatch.setattr(remote, "open_tunnel", lambda *a, **k: object())
    monkeypatch.setenv("DRPOC_TEST_MYSQL_PW", PASSWORD)
    bastion = SshHost("aws-db", "127.0.0.1", 2202, "drpoc", True, None, None, 5.0, 30.0)
    db.connect(endpoint(via="aws-db", port=3306), FakeInventory(**{"aws-db": bastion}))
    db.connect(endpoint(), FakeInventory())
    assert made[0].get("ssl_disabled") is True and made[0]["defer_connect"] is True
    assert "ssl_disabled" not in made[1]


def test_a_pooled_connection_serves_only_callers_with_its_own_timeouts():
    """A connection opened with a 30 s read timeout must not be handed to a caller that asked for 2 s: its reuse
    ping would wait 30 s on a frozen server (seen on the lab's failover tests)."""
    from dataclasses import replace
    base = endpoint()
    assert db._endpoint_key(base) == db._endpoint_key(replace(base))
    for field in ("connect_timeout", "read_timeout", "write_timeout"):
        assert db._endpoint_key(base) != db._endpoint_key(replace(base, **{field: 7.5})), field
