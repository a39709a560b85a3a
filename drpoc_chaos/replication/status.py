"""Normalise ``SHOW REPLICA STATUS`` / ``SHOW SLAVE STATUS`` into one shape.

The same facts come under different column names depending on the server:

* MySQL 8.0.22+ ``SHOW REPLICA STATUS``: ``Replica_*`` / ``Source_*`` (``Seconds_Behind_Source``);
* MySQL <= 8.0.21 ``SHOW SLAVE STATUS`` and every MariaDB (10.5+ ``SHOW REPLICA STATUS`` too):
  ``Slave_*`` / ``Master_*`` (``Seconds_Behind_Master``).

:func:`parse_replica_status` takes one row as PyMySQL's ``DictCursor`` returns it;
:func:`parse_replica_status_text` takes the ``\\G`` text the ``mysql``/``mariadb`` client
prints. Both return :class:`ReplicaStatus` (or ``None`` when replication is not configured).
:func:`classify_io_error` tells a silent drop (timeout) from a refusal or a missing route.

Pure functions only: no connection is opened here.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

__all__ = [
    "ReplicaStatusParseError",
    "ReplicaStatus",
    "parse_replica_status",
    "parse_replica_status_text",
    "classify_io_error",
]


class ReplicaStatusParseError(ValueError):
    """The row or text is not a replication status this module understands."""


# canonical name -> accepted column names, newest first.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "io_running": ("Replica_IO_Running", "Slave_IO_Running"),
    "sql_running": ("Replica_SQL_Running", "Slave_SQL_Running"),
    "seconds_behind_source": ("Seconds_Behind_Source", "Seconds_Behind_Master"),
    "last_io_errno": ("Last_IO_Errno",),
    "last_io_error": ("Last_IO_Error",),
    "last_sql_errno": ("Last_SQL_Errno",),
    "last_sql_error": ("Last_SQL_Error",),
    "io_state": ("Replica_IO_State", "Slave_IO_State"),
    "sql_state": ("Replica_SQL_Running_State", "Slave_SQL_Running_State"),
    "source_host": ("Source_Host", "Master_Host"),
    "source_port": ("Source_Port", "Master_Port"),
    "source_user": ("Source_User", "Master_User"),
    "connect_retry": ("Connect_Retry",),
    "source_retry_count": ("Source_Retry_Count", "Master_Retry_Count"),
    "source_server_id": ("Source_Server_Id", "Master_Server_Id"),
    "source_uuid": ("Source_UUID", "Master_UUID"),
    "source_log_file": ("Source_Log_File", "Master_Log_File"),
    "read_source_log_pos": ("Read_Source_Log_Pos", "Read_Master_Log_Pos"),
    "relay_source_log_file": ("Relay_Source_Log_File", "Relay_Master_Log_File"),
    "exec_source_log_pos": ("Exec_Source_Log_Pos", "Exec_Master_Log_Pos"),
    "relay_log_space": ("Relay_Log_Space",),
    "using_gtid": ("Using_Gtid",),
    "gtid_io_pos": ("Gtid_IO_Pos",),
    "retrieved_gtid_set": ("Retrieved_Gtid_Set",),
    "executed_gtid_set": ("Executed_Gtid_Set",),
    "auto_position": ("Auto_Position",),
    "channel_name": ("Channel_Name", "Connection_name"),
}
# Present in every MySQL (5.1 onwards) and MariaDB version; without them the row is not a
# replication status and guessing would be wrong.
_REQUIRED = (
    "io_running", "sql_running", "seconds_behind_source", "last_io_errno", "last_io_error",
    "last_sql_errno", "last_sql_error", "io_state", "source_host", "source_port", "source_user",
)
# Columns only MariaDB has.
_MARIADB_MARKERS = ("Using_Gtid", "Gtid_IO_Pos", "Gtid_Slave_Pos", "Parallel_Mode", "Slave_DDL_Groups")
# MariaDB shows "Preparing" for a few ms while the IO thread (re)connects: not running yet, not an error
_IO_STATES = ("Yes", "No", "Connecting", "Preparing")
_SQL_STATES = ("Yes", "No")


@dataclass
class ReplicaStatus:
    """One replication channel's status, with the same field names on MySQL and MariaDB.

    ``seconds_behind_source`` is None when the server says NULL (a thread is not running or
    not connected). ``using_gtid`` is MariaDB's ``Using_Gtid`` (``No``/``Slave_Pos``/
    ``Current_Pos``); on MySQL it is derived from ``Auto_Position``: ``"Auto_Position"`` when
    1, ``"No"`` when 0, None on versions without the column. ``flavor`` is ``"mysql"`` or
    ``"mariadb"``; ``naming`` is ``"replica"`` (``Replica_*`` columns) or ``"slave"``. ``raw``
    holds every column as text (None for NULL).
    """

    io_running: str | None
    sql_running: str | None
    seconds_behind_source: int | None
    last_io_errno: int
    last_io_error: str
    last_sql_errno: int
    last_sql_error: str
    io_state: str
    sql_state: str
    source_host: str
    source_port: int
    source_user: str
    connect_retry: int | None
    source_server_id: int | None
    using_gtid: str | None
    gtid_io_pos: str | None
    retrieved_gtid_set: str | None
    executed_gtid_set: str | None
    source_log_file: str | None
    read_source_log_pos: int | None
    exec_source_log_pos: int | None
    relay_log_space: int | None
    flavor: str
    naming: str
    source_retry_count: int | None = None
    source_uuid: str | None = None
    relay_source_log_file: str | None = None
    channel_name: str | None = None
    raw: dict[str, str | None] = field(default_factory=dict)

    @property
    def threads_running(self) -> bool:
        """Both the I/O (receiver) and SQL (applier) threads report ``Yes``."""
        return self.io_running == "Yes" and self.sql_running == "Yes"

    @property
    def configured(self) -> bool:
        """Replication is configured (a status row exists); the parsers return None otherwise."""
        return True

    @property
    def io_connecting(self) -> bool:
        """The I/O thread is trying to (re)connect to the source."""
        return self.io_running == "Connecting"

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict of every field (``raw`` included) plus the properties."""
        data = dataclasses.asdict(self)
        data.update(threads_running=self.threads_running, configured=self.configured,
                    io_connecting=self.io_connecting)
        return data


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


@overload
def _as_int(value: str | None, column: str, *, allow_null: Literal[False]) -> int: ...
@overload
def _as_int(value: str | None, column: str, *, allow_null: bool) -> int | None: ...
def _as_int(value: str | None, column: str, *, allow_null: bool) -> int | None:
    if value is None or value == "":
        if allow_null:
            return None
        raise ReplicaStatusParseError(f"column {column} is empty; expected a number")
    try:
        return int(value)
    except ValueError:
        raise ReplicaStatusParseError(f"column {column} is {value!r}; expected a number") from None


def parse_replica_status(row: Mapping[str, Any] | None) -> ReplicaStatus | None:
    """Normalise one row of ``SHOW REPLICA STATUS`` / ``SHOW SLAVE STATUS``.

    ``row`` is a mapping of column name to value as PyMySQL's ``DictCursor`` returns it
    (values may be ``str``, ``int``, ``None`` or ``bytes``). ``None`` or an empty mapping
    means the statement returned no row - replication is not configured - and gives ``None``.

    Raises :class:`ReplicaStatusParseError` when required columns are missing (the message
    names them) or when a value is not what the server would print (e.g. a non-numeric port,
    an I/O thread state other than Yes/No/Connecting).
    """
    if row is None or len(row) == 0:
        return None
    raw = {str(key): _text(value) for key, value in row.items()}
    lower = {key.lower(): key for key in raw}

    def column(canonical: str) -> tuple[str, str | None] | None:
        for name in _COLUMNS[canonical]:
            key = name if name in raw else lower.get(name.lower())
            if key is not None:
                return key, raw[key]
        return None

    values: dict[str, tuple[str, str | None] | None] = {c: column(c) for c in _COLUMNS}
    missing = [_COLUMNS[c][0] + (f" (or {_COLUMNS[c][1]})" if len(_COLUMNS[c]) > 1 else "")
               for c in _REQUIRED if values[c] is None]
    if missing:
        raise ReplicaStatusParseError(
            f"not a replica status row: missing column(s) {', '.join(missing)}; "
            "pass one row of SHOW REPLICA STATUS / SHOW SLAVE STATUS")

    def required(canonical: str) -> tuple[str, str | None]:
        """A column of _REQUIRED (their presence is checked above): its name as the row spells it, and its value."""
        found = values[canonical]
        if found is None:  # not reached
            raise ReplicaStatusParseError(f"not a replica status row: missing column {_COLUMNS[canonical][0]}")
        return found

    def text(canonical: str) -> str | None:
        found = values[canonical]
        return None if found is None else found[1]

    def text_or_empty(canonical: str) -> str:
        return text(canonical) or ""

    def number(canonical: str) -> int | None:
        found = values[canonical]
        if found is None:
            return None
        return _as_int(found[1], found[0], allow_null=True)

    def not_null_number(canonical: str) -> int:
        key, value = required(canonical)
        return _as_int(value, key, allow_null=False)

    io_running = text("io_running")
    if io_running is not None and io_running not in _IO_STATES:
        raise ReplicaStatusParseError(
            f"{required('io_running')[0]} is {io_running!r}; expected one of {', '.join(_IO_STATES)}")
    sql_running = text("sql_running")
    if sql_running is not None and sql_running not in _SQL_STATES:
        raise ReplicaStatusParseError(
            f"{required('sql_running')[0]} is {sql_running!r}; expected one of {', '.join(_SQL_STATES)}")

    flavor = "mariadb" if any(marker in raw for marker in _MARIADB_MARKERS) else "mysql"
    if flavor == "mariadb":
        using_gtid = text("using_gtid")
    else:
        auto_position = number("auto_position")
        using_gtid = None if auto_position is None else ("Auto_Position" if auto_position else "No")

    return ReplicaStatus(
        io_running=io_running,
        sql_running=sql_running,
        seconds_behind_source=number("seconds_behind_source"),
        last_io_errno=number("last_io_errno") or 0,
        last_io_error=text_or_empty("last_io_error"),
        last_sql_errno=number("last_sql_errno") or 0,
        last_sql_error=text_or_empty("last_sql_error"),
        io_state=text_or_empty("io_state"),
        sql_state=text_or_empty("sql_state"),
        source_host=text_or_empty("source_host"),
        source_port=not_null_number("source_port"),
        source_user=text_or_empty("source_user"),
        connect_retry=number("connect_retry"),
        source_server_id=number("source_server_id"),
        using_gtid=using_gtid,
        gtid_io_pos=text("gtid_io_pos"),
        retrieved_gtid_set=text("retrieved_gtid_set"),
        executed_gtid_set=text("executed_gtid_set"),
        source_log_file=text("source_log_file"),
        read_source_log_pos=number("read_source_log_pos"),
        exec_source_log_pos=number("exec_source_log_pos"),
        relay_log_space=number("relay_log_space"),
        flavor=flavor,
        naming="replica" if required("io_running")[0].startswith("Replica_") else "slave",
        source_retry_count=number("source_retry_count"),
        source_uuid=text("source_uuid"),
        relay_source_log_file=text("relay_source_log_file"),
        channel_name=text("channel_name"),
        raw=raw,
    )


_ROW_HEADER_RE = re.compile(r"^\*+ (?P<n>\d+)\. row \*+$")
_FIELD_RE = re.compile(r"^\s*(?P<key>[A-Za-z][A-Za-z0-9_]*):(?:[ \t](?P<value>.*))?$")
_TRAILER_RE = re.compile(r"^(?:\d+ rows? in set|Empty set)(?: \([\d.]+ sec\))?$")


def parse_replica_status_text(text: str) -> ReplicaStatus | None:
    """Parse the ``\\G`` form of ``SHOW REPLICA STATUS`` / ``SHOW SLAVE STATUS``.

    Accepts what the ``mysql``/``mariadb`` client prints: an optional
    ``*************************** 1. row ***************************`` line, ``Key: value``
    lines (values may be empty; ``NULL`` means None; a GTID set continued on the next line
    after a trailing comma is joined with a newline, as the server returns it), and the
    client's ``1 row in set (0.00 sec)`` / ``Empty set`` trailer.

    Empty text (the client prints nothing when there is no row) or ``Empty set`` gives None.
    Raises :class:`ReplicaStatusParseError` on any other line, on more than one row (use
    ``FOR CHANNEL`` / a connection name), and on missing required columns.
    """
    rows: list[dict[str, str | None]] = []
    current: dict[str, str | None] | None = None
    last_key: str | None = None
    for no, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        stripped = line.strip()
        # The client's trailers, and what it prints after "\\G;" (an empty second statement).
        if not stripped or _TRAILER_RE.match(stripped) or stripped in ("ERROR:", "No query specified"):
            continue
        if _ROW_HEADER_RE.match(stripped):
            current, last_key = {}, None
            rows.append(current)
            continue
        m = _FIELD_RE.match(line)
        if m:
            if current is None:
                current = {}
                rows.append(current)
            key = m["key"]
            if key in current:
                raise ReplicaStatusParseError(
                    f"line {no}: column {key} appears twice in one row: {line!r}")
            value = (m["value"] or "").strip()
            current[key] = None if value == "NULL" else value
            last_key = key
            continue
        previous = current.get(last_key) if current is not None and last_key else None
        if current is not None and last_key and previous is not None and previous.endswith(","):
            # Multi-UUID GTID sets are printed one UUID per line.
            current[last_key] = f"{previous}\n{stripped}"
            continue
        raise ReplicaStatusParseError(
            f"line {no}: not a 'Column: value' line of SHOW REPLICA STATUS\\G: {line!r}. "
            "Hint: pass the client's output of SHOW REPLICA STATUS\\G (or SHOW SLAVE STATUS\\G) only")
    if not rows:
        return None
    if len(rows) > 1:
        raise ReplicaStatusParseError(
            f"{len(rows)} rows (several replication channels); query one with "
            "SHOW REPLICA STATUS FOR CHANNEL '<name>' or SHOW SLAVE '<name>' STATUS")
    return parse_replica_status(rows[0])


_OS_ERRNO_RE = re.compile(r"\((?P<errno>\d+)(?=[\s)])")
_OS_ERRNO_CLASSES = {110: "timeout", 111: "refused", 113: "no-route"}
_DNS_ERRNOS = {2005}  # CR_UNKNOWN_HOST
_AUTH_ERRNOS = {1045, 2061}  # ER_ACCESS_DENIED_ERROR, CR_AUTH_PLUGIN_ERR (caching_sha2 over plain TCP)


def classify_io_error(errno: int | str | None, message: str | None) -> str:
    """Classify a replica I/O error (``Last_IO_Errno``, ``Last_IO_Error``).

    Returns one of:

    * ``"none"`` - no error (errno 0 / empty message);
    * ``"timeout"`` - OS errno 110 / "Connection timed out": packets silently dropped;
    * ``"refused"`` - OS errno 111 / "Connection refused": the host answered, nothing listens;
    * ``"no-route"`` - OS errno 113 / "No route to host";
    * ``"auth"`` - 1045 access denied, 2061 authentication plugin error;
    * ``"dns"`` - 2005 unknown host / resolver failures;
    * ``"other"`` - anything else (2013 lost connection, 1236 binlog purged...).

    The server errno is usually 2003 (can't connect) with the OS errno inside the message -
    MariaDB ``(110 "Connection timed out")``, MySQL ``(110)`` - so the message decides first;
    an OS errno passed directly as ``errno`` is understood too.
    """
    code = int(errno) if errno not in (None, "") else 0
    text = message or ""
    lowered = text.lower()
    if code == 0 and not text.strip():
        return "none"
    if code in _AUTH_ERRNOS or "access denied" in lowered or "authentication" in lowered:
        return "auth"
    if (code in _DNS_ERRNOS or "unknown mysql server host" in lowered or "unknown server host" in lowered
            or "name or service not known" in lowered or "temporary failure in name resolution" in lowered):
        return "dns"
    m = _OS_ERRNO_RE.search(text)
    if m and int(m["errno"]) in _OS_ERRNO_CLASSES:
        return _OS_ERRNO_CLASSES[int(m["errno"])]
    if code in _OS_ERRNO_CLASSES:
        return _OS_ERRNO_CLASSES[code]
    if "connection timed out" in lowered:
        return "timeout"
    if "connection refused" in lowered:
        return "refused"
    if "no route to host" in lowered:
        return "no-route"
    return "other"
