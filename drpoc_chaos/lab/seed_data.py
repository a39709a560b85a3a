"""Realistic tables on an inventory's source (the lab's by default), for `drpoc parity` to compare: integers,
decimals, utf8mb4 varchar/text, datetimes, NULLs, a composite primary key, a string primary key and a table without
a key. They replicate to the replica like any write. Deterministic for a given row count and seed.

`inject_divergence` and `repair_rows` change the *replica only* (`SET SESSION sql_log_bin = 0`): the test helpers
that make the replica differ on purpose and put it back.

    drpoc lab seed-data --rows 1000000 [--inventory FILE] [--schema drpoc_seed]
"""
from __future__ import annotations

import datetime as dt
import random
import time
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

import pymysql

from .. import db
from ..core.parity import quote_ident
from ..inventory import Inventory
from ..services import replica as replica_service

DEFAULT_SCHEMA = "drpoc_seed"
BATCH = 2_000

# share of the rows per table; the rest of the layout is in TABLES
SHARES = {"customers": 0.45, "order_lines": 0.40, "tags": 0.05, "audit_log": 0.10}

TABLES = {
    "customers": """CREATE TABLE {t} (
        id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        email VARCHAR(190) NULL,
        balance DECIMAL(14,2) NOT NULL,
        score DOUBLE NULL,
        created_at DATETIME(6) NOT NULL,
        notes TEXT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    "order_lines": """CREATE TABLE {t} (
        order_id INT UNSIGNED NOT NULL,
        line_no SMALLINT UNSIGNED NOT NULL,
        sku VARCHAR(32) NOT NULL,
        qty INT NOT NULL,
        unit_price DECIMAL(10,2) NOT NULL,
        shipped_at DATETIME NULL,
        PRIMARY KEY (order_id, line_no)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    "tags": """CREATE TABLE {t} (
        tag VARCHAR(64) NOT NULL PRIMARY KEY,
        label VARCHAR(200) NULL,
        uses INT NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    "audit_log": """CREATE TABLE {t} (
        at DATETIME NOT NULL,
        actor VARCHAR(64) NULL,
        action VARCHAR(32) NOT NULL,
        detail TEXT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
}

_FIRST = ["Zoë", "José", "Łukasz", "Ægir", "Mårten", "Ana", "李", "Søren", "Chloé", "Dmitrij", "Aylin", "Nuño"]
_LAST = ["García", "Müller", "Øster", "Nguyễn", "O'Brien", "Schröder", "Kowalczyk", "佐藤", "Smith", "Dvořák"]
_ACTIONS = ["login", "logout", "update", "delete", "export", "grant"]
_EPOCH = dt.datetime(2024, 1, 1)


def _customer(i: int, rnd: random.Random) -> tuple:
    name = f"{rnd.choice(_FIRST)} {rnd.choice(_LAST)}"
    email = None if rnd.random() < 0.1 else f"user{i}@example.org"
    notes = None if rnd.random() < 0.5 else "note ✓ " + "x" * rnd.randrange(0, 120)
    score = None if rnd.random() < 0.2 else round(rnd.uniform(-1000, 1000), 6)
    created = _EPOCH + dt.timedelta(seconds=rnd.randrange(0, 60_000_000), microseconds=rnd.randrange(0, 10**6))
    return (i, name, email, Decimal(rnd.randrange(-10**8, 10**10)) / 100, score, created, notes)


def _order_line(i: int, rnd: random.Random) -> tuple:
    order_id, line_no = i // 4 + 1, i % 4 + 1
    shipped = None if rnd.random() < 0.3 else _EPOCH + dt.timedelta(seconds=rnd.randrange(0, 60_000_000))
    return (order_id, line_no, f"SKU-{rnd.randrange(10**6):06d}", rnd.randrange(1, 50),
            Decimal(rnd.randrange(1, 10**6)) / 100, shipped)


def _tag(i: int, rnd: random.Random) -> tuple:
    return (f"tag-{i:08d}-{rnd.choice(_FIRST)}", None if rnd.random() < 0.3 else f"Étiquette {i}",
            rnd.randrange(0, 10**6))


def _audit(i: int, rnd: random.Random) -> tuple:
    return (_EPOCH + dt.timedelta(seconds=i), None if rnd.random() < 0.2 else f"actor{rnd.randrange(1000)}",
            rnd.choice(_ACTIONS), None if rnd.random() < 0.4 else f"détail {i}")


_ROWS: dict[str, tuple[Callable[[int, random.Random], tuple], Sequence[str]]] = {
    "customers": (_customer, ("id", "name", "email", "balance", "score", "created_at", "notes")),
    "order_lines": (_order_line, ("order_id", "line_no", "sku", "qty", "unit_price", "shipped_at")),
    "tags": (_tag, ("tag", "label", "uses")),
    "audit_log": (_audit, ("at", "actor", "action", "detail")),
}


def plan(rows: int) -> dict[str, int]:
    """Rows per table for `rows` in all (every table gets at least one row)."""
    counts = {t: max(1, int(rows * share)) for t, share in SHARES.items()}
    counts["customers"] += max(0, rows - sum(counts.values()))
    return counts


def seed(inv: Inventory, rows: int, *, schema: str = DEFAULT_SCHEMA, seed_value: int = 15,
         secrets: Mapping | None = None, say: Callable[[str], None] = lambda m: None,
         catch_up_timeout: float = 600) -> dict[str, Any]:
    """(Re)create `schema` on the source with `rows` rows over its tables, then wait for the replica to apply it."""
    if rows < 4:
        raise ValueError("seed-data: --rows must be at least 4 (one row per table)")
    s = quote_ident(schema)
    conn = db.connect(inv.source, inv, secrets)
    t0 = time.monotonic()
    counts = plan(rows)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {s}")
            cur.execute(f"CREATE DATABASE {s} DEFAULT CHARACTER SET utf8mb4")
            for table, ddl in TABLES.items():
                cur.execute(ddl.format(t=f"{s}.{quote_ident(table)}"))
            for table, n in counts.items():
                make, cols = _ROWS[table]
                rnd = random.Random(f"{seed_value}:{table}")
                statement = (f"INSERT INTO {s}.{quote_ident(table)} ({', '.join(quote_ident(c) for c in cols)}) "
                             f"VALUES ({', '.join(['%s'] * len(cols))})")
                for start in range(0, n, BATCH):
                    cur.executemany(statement, [make(i, rnd) for i in range(start + 1, min(n, start + BATCH) + 1)])
                say(f"seed-data: {schema}.{table}: {n:,} rows")
    except pymysql.MySQLError as exc:
        raise db.db_error(exc, inv.source, "seed-data") from exc
    finally:
        conn.close()
    loaded = time.monotonic() - t0
    caught = replica_service.catch_up(inv, timeout=catch_up_timeout, secrets=secrets)
    say(f"seed-data: {sum(counts.values()):,} rows in {loaded:.1f}s; replica caught up in {caught['seconds']:.1f}s")
    return {"schema": schema, "tables": counts, "rows": sum(counts.values()), "seconds": round(loaded, 3),
            "replica_caught_up_seconds": caught["seconds"]}


# --- divergence on the replica (tests and benchmarks) ------------------------------------------------------------

def _replica_unlogged(inv: Inventory, secrets: Mapping | None):
    conn = db.connect(inv.replica, inv, secrets)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")  # the replica's own binlog never carries the divergence
    return conn


def _where(key_cols: Sequence[str], key: Sequence[Any]) -> tuple[str, list[Any]]:
    return " AND ".join(f"{quote_ident(c)} = %s" for c in key_cols), list(key)


def inject_divergence(inv: Inventory, kind: str, schema: str, table: str, key_cols: Sequence[str],
                      key: Sequence[Any], column: str | None = None, secrets: Mapping | None = None) -> None:
    """Make the replica differ from the source on one row, unlogged: `changed` (flips the case of `column`'s first
    letter, or appends '~' when it has no case), `missing` (deletes the row) or `extra` (inserts a copy
    of the row under `key`, which must not exist on the source; `column` must then be the key column to change)."""
    t = f"{quote_ident(schema)}.{quote_ident(table)}"
    conn = _replica_unlogged(inv, secrets)
    try:
        with conn.cursor() as cur:
            where, args = _where(key_cols, key)
            if kind == "changed":
                c = quote_ident(column or "")
                # a case flip ('José' → 'josé') is equal under the table's case-insensitive collation: the
                # checksum must see it all the same
                first = f"LEFT({c}, 1)"
                cur.execute(f"UPDATE {t} SET {c} = CONCAT(IF(BINARY {first} = BINARY UPPER({first}), "
                            f"LOWER({first}), UPPER({first})), SUBSTRING({c}, 2)) WHERE {where}", args)
                if cur.rowcount == 0:
                    cur.execute(f"UPDATE {t} SET {c} = CONCAT({c}, '~') WHERE {where}", args)
            elif kind == "missing":
                cur.execute(f"DELETE FROM {t} WHERE {where}", args)
            elif kind == "extra":
                cur.execute(f"SELECT * FROM {t} LIMIT 1")
                row = cur.fetchone()
                if row is None:
                    raise ValueError(f"{schema}.{table} is empty on the replica: nothing to copy")
                row = dict(row)
                row.update(dict(zip(key_cols, key, strict=True)))
                cols = list(row)
                cur.execute(f"INSERT INTO {t} ({', '.join(quote_ident(c) for c in cols)}) "
                            f"VALUES ({', '.join(['%s'] * len(cols))})", [row[c] for c in cols])
            else:
                raise ValueError(f"divergence kind {kind!r}: use changed, missing or extra")
            if cur.rowcount == 0:
                raise ValueError(f"no row {list(key)} in {schema}.{table} on the replica to make {kind}")
    finally:
        conn.close()


def repair_rows(inv: Inventory, schema: str, table: str, key_cols: Sequence[str], keys: Sequence[Sequence[Any]],
                secrets: Mapping | None = None) -> None:
    """Put rows of the replica back as the source has them (unlogged): delete each key, copy the source's row."""
    t = f"{quote_ident(schema)}.{quote_ident(table)}"
    src = db.connect(inv.source, inv, secrets)
    rep = _replica_unlogged(inv, secrets)
    try:
        with src.cursor() as s_cur, rep.cursor() as r_cur:
            for key in keys:
                where, args = _where(key_cols, key)
                s_cur.execute(f"SELECT * FROM {t} WHERE {where}", args)
                row = s_cur.fetchone()
                r_cur.execute(f"DELETE FROM {t} WHERE {where}", args)
                if row:
                    cols = list(row)
                    r_cur.execute(f"INSERT INTO {t} ({', '.join(quote_ident(c) for c in cols)}) "
                                  f"VALUES ({', '.join(['%s'] * len(cols))})", [row[c] for c in cols])
    finally:
        src.close()
        rep.close()



def churn(inv: Inventory, seconds: float, *, rate: float = 200.0, schema: str = DEFAULT_SCHEMA,
          secrets: Mapping | None = None, stop: Callable[[], bool] = lambda: False) -> dict[str, int]:
    """Live writes on the source's seeded tables for `seconds` (bounded) at about `rate` statements per second:
    customers updated at random, order lines appended, tags' counters bumped — each its own autocommit
    transaction, so every chunk a parity check reads may be changing under it."""
    s = quote_ident(schema)
    conn = db.connect(inv.source, inv, secrets)
    rnd = random.Random(seconds)
    done = {"update": 0, "insert": 0, "tag": 0}
    t0 = time.monotonic()
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COALESCE(MAX(id), 1) AS m FROM {s}.`customers`")
            max_customer = int((cur.fetchone() or {"m": 1})["m"])
            cur.execute(f"SELECT COALESCE(MAX(order_id), 0) AS m FROM {s}.`order_lines`")
            next_order = int((cur.fetchone() or {"m": 0})["m"]) + 1
            n = 0
            while time.monotonic() - t0 < seconds and not stop():
                due = t0 + n / rate
                # two clock reads: the second can be past `due` already (time.sleep refuses a negative length)
                time.sleep(max(0.0, due - time.monotonic()))
                n += 1
                pick = n % 3
                if pick == 0:
                    cur.execute(f"UPDATE {s}.`customers` SET balance = balance + 1, notes = CONCAT('churn ', %s) "
                                f"WHERE id = %s", (n, rnd.randrange(1, max_customer + 1)))
                    done["update"] += 1
                elif pick == 1:
                    cur.execute(f"INSERT INTO {s}.`order_lines` (order_id, line_no, sku, qty, unit_price) "
                                f"VALUES (%s, 1, 'SKU-CHURN', 1, 9.99)", (next_order,))
                    next_order += 1
                    done["insert"] += 1
                else:
                    cur.execute(f"UPDATE {s}.`tags` SET uses = uses + 1 ORDER BY uses LIMIT 1")
                    done["tag"] += 1
    finally:
        conn.close()
    return done
