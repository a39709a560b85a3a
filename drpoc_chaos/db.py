"""MySQL/MariaDB connections to the inventory's source and replica (PyMySQL).

- `connect()` opens one connection: autocommit, DictCursor, utf8mb4, the endpoint's connect/read/write timeouts.
  An endpoint with `via` is reached through an SSH direct-tcpip channel (remote.open_tunnel) handed to PyMySQL.
- `DbPool` keeps one connection per endpoint and checks it with a ping before reuse. A PyMySQL connection is not
  thread-safe: give each thread its own DbPool.
- `execute()` runs one statement and returns its rows; every failure is a `DbError` naming the endpoint, the SQL
  verb and the fix. `db_error()` is the pure mapping from a PyMySQL error to that message.

The password is resolved from its reference (inventory.resolve_secret) when connecting and only handed to
PyMySQL: it is never stored here, logged, or put in a message.
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Any, Mapping, Sequence

import pymysql
import pymysql.cursors
from pymysql.constants import CR, ER

from . import remote
from .inventory import Inventory, MysqlEndpoint, resolve_secret

__all__ = ["DbError", "DbPool", "connect", "db_error", "execute", "sql_verb"]

log = logging.getLogger("chaostoolkit")

#: errors after which the connection is unusable: the pool drops it
CONNECTION_LOST = {CR.CR_CONN_HOST_ERROR, CR.CR_CONNECTION_ERROR, CR.CR_SERVER_GONE_ERROR, CR.CR_SERVER_LOST,
                   CR.CR_SERVER_LOST_EXTENDED, 0}


class DbError(Exception):
    """A database operation failed. `.endpoint` (MysqlEndpoint), `.verb` (CONNECT, SELECT, SHOW …) and `.code`
    (MySQL/client error number or None) say which; the message says what to do. Never holds the password."""

    def __init__(self, message: str, *, endpoint: MysqlEndpoint | None = None, verb: str | None = None,
                 code: int | None = None):
        super().__init__(message)
        self.endpoint = endpoint
        self.verb = verb
        self.code = code

    @property
    def connection_lost(self) -> bool:
        return self.code in CONNECTION_LOST


_TWO_WORD_VERBS = {"SHOW", "START", "STOP", "CHANGE", "CREATE", "DROP", "ALTER", "RESET", "FLUSH", "SET"}
_COMMENT = re.compile(r"^\s*(?:(?:/\*.*?\*/|--[^\n]*\n|#[^\n]*\n)\s*)*", re.S)


def sql_verb(sql: str) -> str:
    """The statement's verb for messages: `SELECT`, `INSERT`, `SHOW REPLICA`, `STOP SLAVE` …"""
    words = _COMMENT.sub("", sql or "", count=1).split(None, 2)
    if not words:
        return "SQL"
    verb = words[0].upper().rstrip(";")
    if verb in _TWO_WORD_VERBS and len(words) > 1:
        verb += " " + re.split(r"[^A-Za-z_]", words[1], maxsplit=1)[0].upper()
    return verb


def _where(endpoint: MysqlEndpoint) -> str:
    via = f" via {endpoint.via}" if endpoint.via else ""
    return f"MySQL {endpoint.role} ({endpoint.site}) {endpoint.address}:{endpoint.port}{via}"


def _ref_text(ref: Mapping | None, option_file: str | None = None) -> str:
    if not ref:
        return f"the password in option_file {option_file}"
    kind, name = next(iter(ref.items()))
    return {"env": f"environment variable {name}", "file": f"file {name}",
            "secret": f"Chaos Toolkit secret {name}"}.get(kind, str(kind))


def _fix(code: int | None, endpoint: MysqlEndpoint, verb: str) -> str:
    user, db = endpoint.user, endpoint.database
    seen_from = f" as seen from {endpoint.via}" if endpoint.via else ""
    if code == ER.ACCESS_DENIED_ERROR:  # 1045
        ref = _ref_text(endpoint.password_ref, endpoint.option_file)
        return f"check the password reference ({ref}) and that user {user} exists with a grant for this client's host"
    if code == ER.DBACCESS_DENIED_ERROR:  # 1044
        return f"grant {user} privileges on {db}, or fix `database` in the inventory"
    if code == ER.BAD_DB_ERROR:  # 1049
        return f"create database {db} on the {endpoint.role}, or fix `database` in the inventory"
    if code == ER.HOST_NOT_PRIVILEGED:  # 1130
        return f"create {user} for this client's host (e.g. '{user}'@'%') on the {endpoint.role}"
    if code == ER.HOST_IS_BLOCKED:  # 1129
        return "run `mysqladmin flush-hosts` (or FLUSH HOSTS) on the server and raise max_connect_errors"
    if code == ER.CON_COUNT_ERROR:  # 1040
        return "too many connections: close idle sessions or raise max_connections"
    if code in (ER.SPECIFIC_ACCESS_DENIED_ERROR, ER.TABLEACCESS_DENIED_ERROR, ER.COLUMNACCESS_DENIED_ERROR):
        return (f"grant {user} the privilege the error names (REPLICATION CLIENT for SHOW REPLICA STATUS, "
                f"REPLICATION SLAVE ADMIN or SUPER for STOP/START REPLICA)")
    if code == ER.NO_SUCH_TABLE:  # 1146
        return f"create the table (the drill's setup step does) or check `database` ({db})"
    if code == ER.PARSE_ERROR and "REPLICA" in verb.upper():  # 1064 on the new replication words
        return ("the server does not understand this syntax: SHOW REPLICA STATUS / START REPLICA need MySQL "
                "8.0.22+ or MariaDB 10.5.1+ (older servers: SHOW SLAVE STATUS)")
    if code == ER.PARSE_ERROR:
        return "the statement is not valid SQL for this server: check the table name and arguments given"
    if code in (ER.OPTION_PREVENTS_STATEMENT, 1836):  # 1290 read_only, 1836 read-only transaction
        return "the server is read-only: writes go to the source — check the roles in the inventory"
    if code in (ER.LOCK_WAIT_TIMEOUT, ER.LOCK_DEADLOCK):
        return "a lock conflict: retry the statement"
    if code in (CR.CR_CONN_HOST_ERROR, CR.CR_CONNECTION_ERROR):  # 2003, 2002
        return (f"is the lab up (`drpoc lab status`) / is {endpoint.address}:{endpoint.port} published, and is "
                f"MySQL listening there{seen_from}? On a real site: firewall, security group, VPN")
    if code == CR.CR_UNKNOWN_HOST:  # 2005
        return "fix `address` in the inventory"
    if code in (CR.CR_SERVER_GONE_ERROR, CR.CR_SERVER_LOST, CR.CR_SERVER_LOST_EXTENDED):
        return (f"the server closed the connection or the network dropped it (server restarted? VPN down? "
                f"read_timeout {endpoint.read_timeout:g}s exceeded?): reconnect and retry")
    if code == 0:
        return "the connection was already closed: reconnect"
    return f"see the MySQL error reference for {code}" if code else "see the error above"


def _tls_fix(text: str, endpoint: MysqlEndpoint) -> str | None:
    """What to do when the TLS handshake failed (certificate not trusted, wrong name, server without TLS)."""
    tls = endpoint.ssl
    if tls is None or not any(w in text for w in ("SSL", "certificate", "TLS")):
        return None
    if "mismatch" in text or "match" in text and "hostname" in text:
        return (f"the server's certificate does not name {endpoint.address} (verify_identity): connect with an "
                f"address the certificate names, or reissue it with {endpoint.address} in subjectAltName")
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (f"the server's certificate is not signed by ssl.ca {tls.ca}: give the CA that signed the server's "
                "ssl_cert, or check that the server was given the certificate you expect (FLUSH SSL reloads it)")
    return "the server did not complete TLS: check that it has ssl_cert/ssl_key (have_ssl = YES) and its error log"


def db_error(exc: BaseException, endpoint: MysqlEndpoint, verb: str, password: str | None = None) -> DbError:
    """The DbError for a PyMySQL exception raised while running `verb` on `endpoint` (pure).

    If `password` is given, any occurrence of it in the server's text is masked.
    """
    args: tuple[Any, ...] = getattr(exc, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    text = str(args[1]) if code is not None and len(args) > 1 else str(exc)
    if password:
        text = text.replace(password, "***")
    detail = f"({code}) {text}" if code is not None else f"{type(exc).__name__}: {text}"
    fix = _tls_fix(text, endpoint) or _fix(code, endpoint, verb)
    return DbError(f"{_where(endpoint)}: {verb} failed: {detail}: {fix}",
                   endpoint=endpoint, verb=verb, code=code)


def connect(endpoint: MysqlEndpoint, inventory: Inventory, secrets: Mapping | None = None,
            pool: remote.SshPool | None = None) -> pymysql.connections.Connection[pymysql.cursors.DictCursor]:
    """A new PyMySQL connection to `endpoint` (autocommit, DictCursor, utf8mb4, the inventory's timeouts).

    With `via`, MySQL is reached through an SSH direct-tcpip channel from that host (`pool` is the SSH pool,
    remote.POOL by default). Raises DbError, or InventoryError when the password reference cannot be resolved.
    """
    password = "" if endpoint.password_ref is None else resolve_secret(
        endpoint.password_ref, secrets, where=f"sites.{endpoint.site}.database.mysql.password")
    options: dict[str, Any] = dict(
        host=endpoint.address, port=endpoint.port, user=endpoint.user or None, password=password,
        database=endpoint.database, charset="utf8mb4", autocommit=True,
        cursorclass=pymysql.cursors.DictCursor, connect_timeout=endpoint.connect_timeout,
        read_timeout=endpoint.read_timeout, write_timeout=endpoint.write_timeout,
    )
    options.update(client_options(endpoint))
    log.debug("mysql %s: connecting as %s", _where(endpoint), endpoint.user)
    if not endpoint.via:
        try:
            return pymysql.connections.Connection(**options)
        except pymysql.MySQLError as exc:
            raise db_error(exc, endpoint, "CONNECT", password) from exc
    try:
        channel = remote.open_tunnel(inventory.host(endpoint.via), endpoint.address, endpoint.port,
                                     pool=pool, timeout=endpoint.connect_timeout)
    except remote.RemoteError as exc:
        raise DbError(f"{_where(endpoint)}: CONNECT failed: {exc}", endpoint=endpoint, verb="CONNECT") from exc
    # PyMySQL 1.1+ tries TLS by itself when the server offers it (PREFERRED), and Python's ssl cannot wrap a
    # paramiko Channel: through SSH the channel is the encryption (the inventory refuses `ssl` with `via`)
    conn = pymysql.connections.Connection(defer_connect=True, ssl_disabled=True, **options)
    try:
        # a paramiko Channel is socket-like enough for PyMySQL; its stub accepts only socket.socket
        conn.connect(sock=channel)  # type: ignore[arg-type]
    except pymysql.MySQLError as exc:
        channel.close()
        raise db_error(exc, endpoint, "CONNECT", password) from exc
    return conn


def client_options(endpoint: MysqlEndpoint) -> dict[str, Any]:
    """PyMySQL's arguments for the endpoint's TLS and option file (pure). PyMySQL reads the option file's group
    only for what it is not given (user, password, host, port, database, ssl-*): the inventory's values win."""
    out: dict[str, Any] = {}
    if endpoint.option_file:
        out.update(read_default_file=endpoint.option_file, read_default_group=endpoint.option_group)
    if endpoint.ssl:
        out.update(ssl_ca=endpoint.ssl.ca, ssl_verify_cert=True, ssl_verify_identity=endpoint.ssl.verify_identity)
        if endpoint.ssl.cert:
            out.update(ssl_cert=endpoint.ssl.cert, ssl_key=endpoint.ssl.key)
    return out


def _endpoint_key(endpoint: MysqlEndpoint) -> tuple:
    # the timeouts too: a connection opened for a 30 s read timeout must not serve a caller that asked for 2 s (its
    # reuse ping would wait 30 s on a frozen server)
    return (endpoint.site, endpoint.role, endpoint.address, endpoint.port, endpoint.via, endpoint.user,
            endpoint.database, tuple(sorted((endpoint.password_ref or {}).items())), endpoint.ssl,
            endpoint.option_file, endpoint.option_group, endpoint.connect_timeout, endpoint.read_timeout,
            endpoint.write_timeout)


class DbPool:
    """One connection per endpoint, checked with a ping before reuse and replaced when the ping fails.

    (PyMySQL's `ping(reconnect=True)` is deprecated and would reconnect directly, bypassing an SSH tunnel, so the
    pool opens a fresh connection through `connect()` instead.) Not shared between threads.
    """

    def __init__(self, ssh_pool: remote.SshPool | None = None):
        self.ssh_pool = ssh_pool
        self._conns: dict[tuple, pymysql.connections.Connection[pymysql.cursors.DictCursor]] = {}
        self._lock = threading.Lock()

    def get(self, endpoint: MysqlEndpoint, inventory: Inventory,
            secrets: Mapping | None = None) -> pymysql.connections.Connection[pymysql.cursors.DictCursor]:
        key = _endpoint_key(endpoint)
        with self._lock:
            conn = self._conns.get(key)
        if conn is not None:
            try:
                conn.ping(reconnect=False)
                return conn
            except pymysql.MySQLError as exc:
                log.debug("mysql %s: connection lost (%s), reconnecting", _where(endpoint), exc)
                self.discard(endpoint)
        conn = connect(endpoint, inventory, secrets, pool=self.ssh_pool)
        with self._lock:
            self._conns[key] = conn
        return conn

    def discard(self, endpoint: MysqlEndpoint) -> None:
        with self._lock:
            conn = self._conns.pop(_endpoint_key(endpoint), None)
        if conn is not None:
            _close_quietly(conn)

    def close_all(self) -> None:
        with self._lock:
            conns = list(self._conns.values())
            self._conns.clear()
        for conn in conns:
            _close_quietly(conn)


def _close_quietly(conn) -> None:
    try:
        conn.close()
    except Exception as exc:  # already closed or broken: nothing to do
        log.debug("mysql: error while closing a connection: %s", exc)


def execute(endpoint: MysqlEndpoint, inventory: Inventory, sql: str, args: Sequence | Mapping | None = None,
            secrets: Mapping | None = None, pool: DbPool | None = None) -> list[dict]:
    """Run one statement on `endpoint` and return its rows (a list of dicts; empty for statements without rows).

    With a `pool`, its connection is reused (and dropped if the connection was lost); without, a connection is
    opened and closed. Raises DbError.
    """
    verb = sql_verb(sql)
    conn = pool.get(endpoint, inventory, secrets) if pool else connect(endpoint, inventory, secrets)
    log.debug("mysql %s: %s", _where(endpoint), verb)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())
    except pymysql.MySQLError as exc:
        error = db_error(exc, endpoint, verb)
        if pool and error.connection_lost:
            pool.discard(endpoint)
        raise error from exc
    finally:
        if not pool:
            _close_quietly(conn)
