"""Data parity of whole schemas, the pure part (docs/PARITY.md): which tables, how a table is cut into chunks, the SQL
text of a chunk's checksum, how rows that differ are classified, the adaptive chunk size, the checkpoint and the ETA.

No I/O here: services/parity.py runs the statements, in parallel, on the source and the replica.

The checksum follows pt-table-checksum (lib/RowChecksum.pm): a per-row CRC32 of every column joined by a
separator, with a bitmap of which nullable columns are NULL (so NULL and '' differ), aggregated over a chunk with
BIT_XOR — order-independent — next to COUNT(*). Two choices differ from pt-table-checksum's, on purpose:

- the separator is the byte 0xFF (`X'FF'`), which makes the whole CONCAT_WS a *binary* string: each column is hashed
  as its bytes, never converted through a collation, so 'a' vs 'A' under a case-insensitive collation is a
  difference; and 0xFF never occurs in utf8mb4 text, numbers or dates, so no column value can imitate a separator
  (pt-table-checksum's '#' can: ('a#', 'b') and ('a', '#b') hash alike);
- pt-table-checksum converts strings `USING utf8mb4` (it compares text); here the bytes are compared.

Identifiers come from the servers' own catalogues and from the command line; every one is checked against
`SAFE_IDENTIFIER` and backtick-quoted — anything else is refused rather than escaped.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import fnmatch
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["SAFE_IDENTIFIER", "SYSTEM_SCHEMAS", "Chunk", "ChunkSizer", "Column", "ParityError", "RowDiff",
           "TableSpec", "Selection", "checkpoint_key", "chunk_checksum_sql", "classify_rows", "decode_key",
           "encode_key", "eta_seconds", "key_in_sql", "quote_ident", "row_hash_expr", "rows_sql", "where_chunk"]

#: letters, digits, `_` and `$`, 1–64 characters (MySQL's unquoted identifiers without the exotic ranges)
SAFE_IDENTIFIER = re.compile(r"[A-Za-z0-9_$]{1,64}")
SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
# an explicit binary collation wins over every column's: the whole CONCAT_WS is bytes, no column is converted
SEPARATOR = "_binary X'FF' COLLATE `binary`"


Key = tuple[Any, ...]  # a row's key values, in key column order


class ParityError(ValueError):
    """Bad input to a parity check (an identifier, a pattern, a checkpoint): the message says what to fix."""


def quote_ident(name: str) -> str:
    """`name` backtick-quoted, or ParityError when it is not a plain identifier (never escaped: refused)."""
    if not isinstance(name, str) or not SAFE_IDENTIFIER.fullmatch(name):
        raise ParityError(f"refusing identifier {name!r}: only letters, digits, _ and $ (1–64 characters) are "
                          f"compared; exclude that schema/table/column or rename it")
    return f"`{name}`"


# --- what is compared ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # information_schema DATA_TYPE, lower case
    nullable: bool


@dataclass(frozen=True)
class TableSpec:
    """A table as both servers must hold it. `key` is the primary key, else the first unique key over NOT NULL
    columns, else empty (the table is then compared as one chunk and rows cannot be pinpointed)."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    key_kind: str = "none"  # "primary" | "unique" | "none"
    estimated_rows: int = 0

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def integer_key(self) -> bool:
        """One integer key column: chunks are key ranges computed from MIN/MAX, no boundary walk needed."""
        if len(self.key) != 1:
            return False
        col = next((c for c in self.columns if c.name == self.key[0]), None)
        return col is not None and col.data_type in INTEGER_TYPES

    def signature(self) -> Key:
        """What must be equal on both servers before rows can be compared: the column names, types, nullability."""
        return tuple((c.name, c.data_type, c.nullable) for c in self.columns)


def pick_key(indexes: Sequence[Mapping[str, Any]], nullable: Mapping[str, bool]) -> tuple[tuple[str, ...], str]:
    """The chunking key from information_schema.STATISTICS rows (INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX,
    COLUMN_NAME): the primary key, else the first unique index whose columns are all NOT NULL (a unique index over
    a nullable column admits many NULL rows, so it identifies nothing)."""
    by_index: dict[str, list[tuple[int, str]]] = {}
    unique: dict[str, bool] = {}
    for r in indexes:
        name = str(r["INDEX_NAME"])
        by_index.setdefault(name, []).append((int(r["SEQ_IN_INDEX"]), str(r["COLUMN_NAME"])))
        unique[name] = int(r["NON_UNIQUE"]) == 0
    cols = {name: tuple(c for _, c in sorted(parts)) for name, parts in by_index.items()}
    if "PRIMARY" in cols:
        return cols["PRIMARY"], "primary"
    for name in sorted(cols):
        if unique[name] and all(not nullable.get(c, True) for c in cols[name]):
            return cols[name], "unique"
    return (), "none"


@dataclass(frozen=True)
class Selection:
    """Which tables: `include`/`exclude` are shell patterns on `schema.table` (`testdb.*`, `*.ping`); a pattern
    without a dot names a whole schema. No include = every non-system schema."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @staticmethod
    def _norm(pattern: str) -> str:
        p = pattern.strip()
        if not p or not re.fullmatch(r"[A-Za-z0-9_$*?\[\]!.\-]+", p):
            raise ParityError(f"table pattern {pattern!r}: use schema.table with shell wildcards, e.g. testdb.* or "
                              f"*.orders")
        return p if "." in p else p + ".*"

    @classmethod
    def parse(cls, include: Iterable[str] | str | None = None,
              exclude: Iterable[str] | str | None = None) -> "Selection":
        def split(v: Iterable[str] | str | None) -> tuple[str, ...]:
            if v is None:
                return ()
            items = v.split(",") if isinstance(v, str) else [x for s in v for x in str(s).split(",")]
            return tuple(cls._norm(x) for x in items if x.strip())
        return cls(split(include), split(exclude))

    def schema_filter(self) -> tuple[str, list[str]]:
        """A WHERE condition on TABLE_SCHEMA narrowing the catalogue queries (their cost is in the schemas they
        open: `sys` alone is a hundred views). `wants` still decides table by table."""
        if not self.include:
            return f"TABLE_SCHEMA NOT IN ({', '.join(['%s'] * len(SYSTEM_SCHEMAS))})", sorted(SYSTEM_SCHEMAS)
        schemas = [p.split(".", 1)[0] for p in self.include]
        if any(any(ch in s for ch in "*?[") for s in schemas):
            return "1=1", []
        names = sorted(set(schemas))
        return f"TABLE_SCHEMA IN ({', '.join(['%s'] * len(names))})", names

    def wants(self, schema: str, table: str) -> bool:
        label = f"{schema}.{table}"
        if self.include:
            chosen = any(fnmatch.fnmatchcase(label, p) for p in self.include)
        else:
            chosen = schema.lower() not in SYSTEM_SCHEMAS
        return chosen and not any(fnmatch.fnmatchcase(label, p) for p in self.exclude)


# --- SQL text ------------------------------------------------------------------------------------------------

def row_hash_expr(columns: Sequence[Column]) -> str:
    """CRC32 over every column's bytes joined by X'FF', plus the NULL bitmap of the nullable columns."""
    parts = [quote_ident(c.name) for c in columns]
    nullable = [quote_ident(c.name) for c in columns if c.nullable]
    if nullable:
        parts.append("CONCAT(" + ", ".join(f"ISNULL({n})" for n in nullable) + ")")
    return f"CRC32(CONCAT_WS({SEPARATOR}, {', '.join(parts)}))"


@dataclass(frozen=True)
class Chunk:
    """A key range: `lower`/`upper` are key tuples (None: unbounded), each inclusive or not. Integer ranges are
    [lower, upper); walked boundaries are (lower, upper]."""

    index: int
    lower: Key | None = None
    upper: Key | None = None
    lower_inclusive: bool = True
    upper_inclusive: bool = False

    @property
    def last(self) -> bool:
        return self.upper is None


def _compare(key: Sequence[str], op: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """`(k1, k2) op (v1, v2)` expanded the way pt-table-checksum does — `k1 > v1 OR (k1 = v1 AND k2 >= v2)` — which
    every server's range optimizer turns into an index range (row constructors are not optimised everywhere)."""
    strict, last_op = op[0], op
    cols = [quote_ident(k) for k in key]
    clauses, params = [], []
    for i in range(len(cols)):
        eqs = [f"{cols[j]} = %s" for j in range(i)]
        tail = last_op if i == len(cols) - 1 else strict
        clauses.append("(" + " AND ".join(eqs + [f"{cols[i]} {tail} %s"]) + ")")
        params += list(values[:i]) + [values[i]]
    return "(" + " OR ".join(clauses) + ")", params


def where_chunk(key: Sequence[str], chunk: Chunk) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) selecting `chunk`'s rows; `1=1` for an unbounded chunk."""
    parts: list[str] = []
    params: list[Any] = []
    if chunk.lower is not None:
        sql, p = _compare(key, ">=" if chunk.lower_inclusive else ">", chunk.lower)
        parts.append(sql)
        params += p
    if chunk.upper is not None:
        sql, p = _compare(key, "<=" if chunk.upper_inclusive else "<", chunk.upper)
        parts.append(sql)
        params += p
    return (" AND ".join(parts) or "1=1"), params


def chunk_checksum_sql(table: TableSpec, chunk: Chunk) -> tuple[str, list[Any]]:
    """COUNT(*) and BIT_XOR of the row hashes of one chunk."""
    where, params = where_chunk(table.key, chunk)
    return (f"SELECT COUNT(*) AS cnt, COALESCE(BIT_XOR({row_hash_expr(table.columns)}), 0) AS crc "
            f"FROM {table.qualified} WHERE {where}", params)


def rows_sql(table: TableSpec, chunk: Chunk) -> tuple[str, list[Any]]:
    """Each row's key and hash in a chunk (never the values): to narrow a differing chunk to its rows."""
    where, params = where_chunk(table.key, chunk)
    keys = ", ".join(quote_ident(k) for k in table.key)
    return f"SELECT {keys}, {row_hash_expr(table.columns)} AS h FROM {table.qualified} WHERE {where}", params


def key_in_sql(table: TableSpec, keys: Sequence[Key]) -> tuple[str, list[Any]]:
    """Each listed row's key and hash, by key (`(k1, k2) IN ((…), …)`)."""
    cols = [quote_ident(k) for k in table.key]
    one = "(" + ", ".join(["%s"] * len(cols)) + ")"
    target = cols[0] if len(cols) == 1 else "(" + ", ".join(cols) + ")"
    values = ", ".join([one] * len(keys))
    return (f"SELECT {', '.join(cols)}, {row_hash_expr(table.columns)} AS h FROM {table.qualified} "
            f"WHERE {target} IN ({values})", [v for k in keys for v in k])


def bucket_expr(table: TableSpec, buckets: int) -> str:
    """A row's bucket in a chunk: a hash of its key modulo `buckets` (any key type; no index needed inside a chunk
    already bounded by the key)."""
    keys = ", ".join(quote_ident(k) for k in table.key)
    return f"MOD(CRC32(CONCAT_WS({SEPARATOR}, {keys})), {int(buckets)})"  # MOD: `%` is a DB-API placeholder


def bucket_checksums_sql(table: TableSpec, chunk: Chunk, buckets: int) -> tuple[str, list[Any]]:
    """COUNT(*) and BIT_XOR of the row hashes per bucket of one chunk: a differing chunk is narrowed to its
    differing buckets in one query per server instead of moving every row's key to the client."""
    where, params = where_chunk(table.key, chunk)
    return (f"SELECT {bucket_expr(table, buckets)} AS b, COUNT(*) AS cnt, BIT_XOR({row_hash_expr(table.columns)}) "
            f"AS crc FROM {table.qualified} WHERE {where} GROUP BY b", params)


def bucket_rows_sql(table: TableSpec, chunk: Chunk, buckets: int, chosen: Sequence[int]) -> tuple[str, list[Any]]:
    """Each row's key and hash in the chosen buckets of a chunk."""
    sql, params = rows_sql(table, chunk)
    marks = ", ".join(["%s"] * len(chosen))
    return f"{sql} AND {bucket_expr(table, buckets)} IN ({marks})", params + [int(b) for b in chosen]


def combine_buckets(buckets: Mapping[int, tuple[int, int]]) -> tuple[int, int]:
    """The chunk's (COUNT, BIT_XOR) from its buckets' (XOR is associative: the same value as one chunk query)."""
    count, crc = 0, 0
    for n, x in buckets.values():
        count, crc = count + n, crc ^ x
    return count, crc


def boundary_sql(table: TableSpec, after: Key | None, rows: int) -> tuple[str, list[Any]]:
    """The key `rows` rows after `after` in key order (pt-table-checksum's nibble): the next chunk's upper bound.
    ORDER BY the key's columns reads the key's own index, so this touches the index only."""
    cols = ", ".join(quote_ident(k) for k in table.key)
    where, params = ("1=1", []) if after is None else _compare(table.key, ">", after)
    return (f"SELECT {cols} FROM {table.qualified} WHERE {where} ORDER BY {cols} "
            f"LIMIT 1 OFFSET {max(0, int(rows) - 1)}", params)


def whole_table_sql(table: TableSpec) -> tuple[str, list[Any]]:
    return chunk_checksum_sql(table, Chunk(0))


# --- rows that differ ----------------------------------------------------------------------------------------

@dataclass
class RowDiff:
    """Keys only, never values. `changing`: rows the source changed while they were being compared (not a
    difference)."""

    missing: list[Key] = field(default_factory=list)  # on the source, not on the replica
    extra: list[Key] = field(default_factory=list)  # on the replica, not on the source
    changed: list[Key] = field(default_factory=list)  # on both, with other content
    changing: list[Key] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.changed)


def classify_rows(source_before: Mapping[Key, int], replica: Mapping[Key, int],
                  source_after: Mapping[Key, int]) -> RowDiff:
    """Rows read on the source, then on the replica once it had applied at least what the source had committed by
    then, then on the source again. A row equal on the replica to either source read is equal. A row the source
    held unchanged across both reads but the replica holds otherwise is a difference (the replica was read between
    the two source reads, so it should hold that value); a row the source changed in between is `changing`."""
    out = RowDiff()
    for k in sorted(set(source_before) | set(replica) | set(source_after), key=sort_key):
        r, b, a = replica.get(k), source_before.get(k), source_after.get(k)
        if r == b or r == a:
            continue
        if b != a:
            out.changing.append(k)
        elif r is None:
            out.missing.append(k)
        elif b is None:
            out.extra.append(k)
        else:
            out.changed.append(k)
    return out


def sort_key(k: Key) -> Key:
    """Keys of mixed Python types (a NULL never is one) sorted stably for reports."""
    return tuple((type(v).__name__, v) for v in k)


# --- adaptive chunk size -------------------------------------------------------------------------------------

@dataclass
class ChunkSizer:
    """Rows per chunk so that one chunk's checksum takes about `target_seconds` (pt-table-checksum's
    --chunk-time): an exponentially weighted rate of rows/s measured on completed chunks, clamped."""

    target_seconds: float = 0.25
    rows: int = 20_000
    minimum: int = 1_000
    maximum: int = 500_000
    weight: float = 0.5
    _rate: float | None = None

    def observe(self, rows: int, seconds: float) -> int:
        if rows > 0 and seconds > 0:
            rate = rows / seconds
            self._rate = rate if self._rate is None else self.weight * rate + (1 - self.weight) * self._rate
            # grow at most 2x per step: one fast (cached) chunk must not make the next one enormous
            self.rows = int(min(self.maximum, max(self.minimum, min(self._rate * self.target_seconds,
                                                                      self.rows * 2))))
        return self.rows


def integer_width(rows: int, density: float) -> int:
    """How many key values hold about `rows` rows at `density` rows per key value."""
    return max(1, int(math.ceil(rows / max(density, 1e-9))))


# --- progress ------------------------------------------------------------------------------------------------

def eta_seconds(done_rows: int, total_rows: int, elapsed: float) -> float | None:
    """Seconds left at the rate so far (None before anything is done). `total_rows` is an estimate."""
    if done_rows <= 0 or elapsed <= 0:
        return None
    return max(0.0, (total_rows - done_rows) / (done_rows / elapsed))


# --- key values in JSON (checkpoint, reports) ----------------------------------------------------------------

def encode_value(v: Any) -> Any:
    """A key value as JSON: ints and strings as they are; other types tagged so `decode_value` restores them."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, decimal.Decimal):
        return {"decimal": str(v)}
    if isinstance(v, dt.datetime):
        return {"datetime": v.isoformat(sep=" ")}
    if isinstance(v, dt.date):
        return {"date": v.isoformat()}
    if isinstance(v, dt.timedelta):
        return {"time": v.total_seconds()}
    if isinstance(v, (bytes, bytearray)):
        return {"bytes": base64.b64encode(bytes(v)).decode()}
    return {"text": str(v)}


def decode_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    (kind, value), = v.items()
    if kind == "float":
        return float(value)
    if kind == "decimal":
        return decimal.Decimal(value)
    if kind == "datetime":
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "time":
        return dt.timedelta(seconds=value)
    if kind == "bytes":
        return base64.b64decode(value)
    return str(value)


def encode_key(k: Key | None) -> list[Any] | None:
    return None if k is None else [encode_value(v) for v in k]


def decode_key(k: Sequence[Any] | None) -> Key | None:
    return None if k is None else tuple(decode_value(v) for v in k)


def key_text(k: Key) -> str:
    """A key for people: `42` or `(7, 3)`; bytes as hex."""
    def one(v: Any) -> str:
        if isinstance(v, (bytes, bytearray)):
            return "0x" + bytes(v).hex()
        return str(v)
    return one(k[0]) if len(k) == 1 else "(" + ", ".join(one(v) for v in k) + ")"


# --- checkpoint ----------------------------------------------------------------------------------------------

CHECKPOINT_FORMAT = "drpoc.parity-checkpoint/1"


def checkpoint_key(source: str, replica: str, tables: Sequence[str]) -> str:
    """What a checkpoint belongs to: the two endpoints and the table list (a resume of another run is refused)."""
    text = json.dumps({"source": source, "replica": replica, "tables": sorted(tables)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class TableProgress:
    """A table's checkpointed state: every chunk up to and including `through` is done (None: nothing yet)."""

    through: list[Any] | None = None  # encoded upper bound of the last contiguous done chunk
    through_inclusive: bool = False
    chunks: int = 0
    rows: int = 0
    done: bool = False
    differences: dict[str, list[Any]] = field(default_factory=lambda: {"missing": [], "extra": [], "changed": []})
    unsettled: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"through": self.through, "through_inclusive": self.through_inclusive, "chunks": self.chunks,
                "rows": self.rows, "done": self.done, "differences": self.differences, "unsettled": self.unsettled}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TableProgress":
        diffs = d.get("differences") or {}
        return cls(through=d.get("through"), through_inclusive=bool(d.get("through_inclusive")),
                   chunks=int(d.get("chunks") or 0), rows=int(d.get("rows") or 0), done=bool(d.get("done")),
                   differences={k: list(diffs.get(k) or []) for k in ("missing", "extra", "changed")},
                   unsettled=int(d.get("unsettled") or 0))


def checkpoint_document(key: str, tables: Mapping[str, TableProgress]) -> dict[str, Any]:
    return {"format": CHECKPOINT_FORMAT, "key": key, "tables": {t: p.to_dict() for t, p in tables.items()}}


def read_checkpoint(doc: Any, key: str) -> dict[str, TableProgress]:
    """The per-table progress of a checkpoint document; ParityError when it is not one or not this run's."""
    if not isinstance(doc, Mapping) or doc.get("format") != CHECKPOINT_FORMAT:
        raise ParityError("not a drpoc parity checkpoint: remove it or give another --checkpoint file")
    if doc.get("key") != key:
        raise ParityError("the checkpoint belongs to another comparison (other servers or tables): run without "
                          "--resume to start over, or give the same tables")
    tables = doc.get("tables")
    if not isinstance(tables, Mapping):
        raise ParityError("the checkpoint has no tables: run without --resume to start over")
    return {str(t): TableProgress.from_dict(p) for t, p in tables.items() if isinstance(p, Mapping)}
