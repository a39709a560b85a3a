"""The pure part of `drpoc parity` (core/parity.py): identifiers, table choice, SQL text for MariaDB and MySQL 8,
row classification under live writes, chunk sizing, checkpoint and ETA — and the command line's refusals, which
come before any server is touched."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from drpoc_chaos import cli
from drpoc_chaos.core import parity as P
from drpoc_chaos.core import recorder
from drpoc_chaos.core.model import DrillResult
from drpoc_chaos.parity import probes
from drpoc_chaos.parity.cli import _text
from drpoc_chaos.replication.dialect import parse_version

COLS = (P.Column("a", "int", False), P.Column("b", "varchar", True), P.Column("c", "datetime", True))
COMPOSITE = P.TableSpec("db", "t", COLS, ("a", "b"), "primary", 100)
SINGLE = P.TableSpec("db", "s", (P.Column("id", "bigint", False), P.Column("v", "text", True)), ("id",), "primary")


# --- identifiers and choice ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["orders", "Order_Lines2", "a$b", "x" * 64])
def test_plain_identifiers_are_backtick_quoted(name):
    assert P.quote_ident(name) == f"`{name}`"


@pytest.mark.parametrize("name", ["", "a`b", "a b", "a;DROP", "x" * 65, "tåble", "a.b", "a-b", None])
def test_anything_else_is_refused_not_escaped(name):
    with pytest.raises(P.ParityError, match="refusing identifier"):
        P.quote_ident(name)


def test_default_selection_is_every_non_system_schema():
    sel = P.Selection.parse()
    assert sel.wants("testdb", "ping") and sel.wants("shop", "orders")
    assert not any(sel.wants(s, "x") for s in ("mysql", "sys", "performance_schema", "information_schema"))
    where, params = sel.schema_filter()
    assert where.startswith("TABLE_SCHEMA NOT IN") and set(params) == P.SYSTEM_SCHEMAS


def test_patterns_include_exclude_and_whole_schemas():
    sel = P.Selection.parse(["shop", "testdb.ping,testdb.pi*"], "shop.tmp_*")
    assert sel.wants("shop", "orders") and sel.wants("testdb", "ping") and sel.wants("testdb", "pie")
    assert not sel.wants("shop", "tmp_1") and not sel.wants("testdb", "other") and not sel.wants("other", "ping")
    assert sel.schema_filter() == ("TABLE_SCHEMA IN (%s, %s)", ["shop", "testdb"])
    assert P.Selection.parse("*.ping").schema_filter() == ("1=1", [])
    assert P.Selection.parse("mysql.user").wants("mysql", "user")  # asked for by name: compared


@pytest.mark.parametrize("bad", ["a b", "x;y", "t`", "'"])
def test_bad_patterns_are_refused(bad):
    with pytest.raises(P.ParityError, match="schema.table"):
        P.Selection.parse(bad)


def test_key_primary_then_unique_not_null_then_none():
    stats = [{"INDEX_NAME": "u_nullable", "NON_UNIQUE": 0, "SEQ_IN_INDEX": 1, "COLUMN_NAME": "b"},
             {"INDEX_NAME": "u_ok", "NON_UNIQUE": 0, "SEQ_IN_INDEX": 2, "COLUMN_NAME": "c"},
             {"INDEX_NAME": "u_ok", "NON_UNIQUE": 0, "SEQ_IN_INDEX": 1, "COLUMN_NAME": "a"},
             {"INDEX_NAME": "plain", "NON_UNIQUE": 1, "SEQ_IN_INDEX": 1, "COLUMN_NAME": "a"}]
    nullable = {"a": False, "b": True, "c": False}
    assert P.pick_key(stats, nullable) == (("a", "c"), "unique")
    primary = stats + [{"INDEX_NAME": "PRIMARY", "NON_UNIQUE": 0, "SEQ_IN_INDEX": 1, "COLUMN_NAME": "c"}]
    assert P.pick_key(primary, nullable) == (("c",), "primary")
    assert P.pick_key(stats[:1] + stats[3:], nullable) == ((), "none")


def test_integer_key_detection():
    assert SINGLE.integer_key and not COMPOSITE.integer_key
    assert not P.TableSpec("d", "t", (P.Column("k", "varchar", False),), ("k",), "primary").integer_key


# --- SQL text ------------------------------------------------------------------------------------------------

def test_row_hash_covers_every_column_as_bytes_with_a_null_bitmap():
    expr = P.row_hash_expr(COLS)
    assert expr == ("CRC32(CONCAT_WS(_binary X'FF' COLLATE `binary`, `a`, `b`, `c`, "
                    "CONCAT(ISNULL(`b`), ISNULL(`c`))))")
    assert "ISNULL" not in P.row_hash_expr((P.Column("a", "int", False),))


def test_composite_key_ranges_are_expanded_for_the_range_optimizer():
    chunk = P.Chunk(3, lower=(1, "x"), upper=(5, "y"), lower_inclusive=False, upper_inclusive=True)
    where, params = P.where_chunk(("a", "b"), chunk)
    assert where == ("((`a` > %s) OR (`a` = %s AND `b` > %s)) AND ((`a` < %s) OR (`a` = %s AND `b` <= %s))")
    assert params == [1, 1, "x", 5, 5, "y"]
    assert P.where_chunk(("id",), P.Chunk(0)) == ("1=1", [])
    assert P.where_chunk(("id",), P.Chunk(0, lower=(10,))) == ("((`id` >= %s))", [10])
    assert P.where_chunk(("id",), P.Chunk(0, upper=(20,))) == ("((`id` < %s))", [20])


def test_chunk_and_row_queries_read_hashes_never_values():
    sql, params = P.chunk_checksum_sql(SINGLE, P.Chunk(0, lower=(1,), upper=(9,)))
    assert sql.startswith("SELECT COUNT(*) AS cnt, COALESCE(BIT_XOR(CRC32(") and "FROM `db`.`s`" in sql
    assert params == [1, 9]
    sql, _ = P.rows_sql(SINGLE, P.Chunk(0))
    assert sql.startswith("SELECT `id`, CRC32(") and " AS h FROM `db`.`s` WHERE 1=1" in sql
    sql, params = P.key_in_sql(COMPOSITE, [(1, "a"), (2, "b")])
    assert sql.endswith("WHERE (`a`, `b`) IN ((%s, %s), (%s, %s))") and params == [1, "a", 2, "b"]
    sql, params = P.key_in_sql(SINGLE, [(7,), (8,)])
    assert sql.endswith("WHERE `id` IN ((%s), (%s))") and params == [7, 8]


def test_bucket_queries_use_mod_because_percent_is_a_placeholder():
    sql, params = P.bucket_checksums_sql(SINGLE, P.Chunk(0, lower=(1,)), 64)
    assert "MOD(CRC32(CONCAT_WS(_binary X'FF' COLLATE `binary`, `id`)), 64) AS b" in sql and "%" not in \
        sql.replace("%s", "")
    assert sql.endswith("GROUP BY b") and params == [1]
    sql, params = P.bucket_rows_sql(SINGLE, P.Chunk(0), 64, [3, 9])
    assert sql.endswith(", 64) IN (%s, %s)") and params == [3, 9]


def test_boundary_walk_reads_the_key_in_order():
    sql, params = P.boundary_sql(COMPOSITE, (4, "q"), 1000)
    assert sql == ("SELECT `a`, `b` FROM `db`.`t` WHERE ((`a` > %s) OR (`a` = %s AND `b` > %s)) ORDER BY `a`, `b` "
                   "LIMIT 1 OFFSET 999")
    assert params == [4, 4, "q"]


@pytest.mark.parametrize("version, position, wait", [
    ("10.11.6-MariaDB-0+deb12u1", "SELECT @@GLOBAL.gtid_binlog_pos AS pos", "SELECT MASTER_GTID_WAIT(%s, %s) AS r"),
    ("8.0.36", "SELECT @@GLOBAL.gtid_executed AS pos", "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s) AS r"),
])
def test_same_position_sql_for_mariadb_and_mysql8(version, position, wait):
    d = parse_version(version)
    assert d.executed_gtid == position and d.gtid_wait() == wait
    assert d.gtid_wait_done(0) and not d.gtid_wait_done(1) and not d.gtid_wait_done(-1)


# --- rows under live writes ----------------------------------------------------------------------------------

def test_rows_equal_to_either_source_read_are_equal():
    before = {(1,): 10, (2,): 20, (3,): 30}
    after = {(1,): 11, (2,): 20, (4,): 40}  # 1 updated, 3 deleted, 4 inserted between the two source reads
    assert not P.classify_rows(before, before, after) and not P.classify_rows(before, after, after)


def test_stable_source_and_different_replica_is_a_difference_by_kind():
    source = {(1,): 10, (2,): 20, (3,): 30}
    replica = {(1,): 10, (2,): 99, (4,): 40}
    diff = P.classify_rows(source, replica, dict(source))
    assert (diff.missing, diff.extra, diff.changed, diff.changing) == ([(3,)], [(4,)], [(2,)], [])


def test_a_row_the_source_changed_meanwhile_is_changing_not_a_difference():
    diff = P.classify_rows({(1,): 10}, {(1,): 5}, {(1,): 11})
    assert not diff and diff.changing == [(1,)]


def test_buckets_combine_into_the_chunk_checksum():
    # COUNT adds up and BIT_XOR is associative: the buckets of one read give that read's chunk checksum
    rows = {k: (k * 2654435761) % 2**32 for k in range(1, 200)}
    buckets: dict[int, tuple[int, int]] = {}
    for k, h in rows.items():
        n, x = buckets.get(k % 7, (0, 0))
        buckets[k % 7] = (n + 1, x ^ h)
    whole = 0
    for h in rows.values():
        whole ^= h
    assert P.combine_buckets(buckets) == (len(rows), whole)
    assert P.combine_buckets({}) == (0, 0)  # an empty chunk: COUNT 0, COALESCE(BIT_XOR, 0)


# --- sizing, progress, checkpoint ----------------------------------------------------------------------------

def test_chunk_size_adapts_to_the_time_target_within_bounds():
    sizer = P.ChunkSizer(target_seconds=0.5, rows=10_000, minimum=1_000, maximum=200_000)
    assert sizer.observe(10_000, 0.01) == 20_000  # fast: at most doubles per chunk
    for _ in range(20):
        sizer.observe(sizer.rows, sizer.rows / 100_000)  # 100 000 rows/s
    assert sizer.rows == 50_000
    for _ in range(20):
        sizer.observe(sizer.rows, sizer.rows / 100)  # very slow
    assert sizer.rows == 1_000
    assert P.integer_width(1000, 0.5) == 2000 and P.integer_width(10, 100) == 1


def test_eta():
    assert P.eta_seconds(0, 100, 1) is None
    assert P.eta_seconds(25, 100, 5) == pytest.approx(15)
    assert P.eta_seconds(120, 100, 5) == 0


@pytest.mark.parametrize("key", [(1, "a"), (Decimal("1.50"),), (dt.datetime(2024, 1, 2, 3, 4, 5, 6),),
                                 (dt.date(2024, 1, 2),), (b"\x00\xff",), (dt.timedelta(seconds=90),), (1.25,)])
def test_keys_survive_json(key):
    assert P.decode_key(json.loads(json.dumps(P.encode_key(key)))) == key


def test_checkpoint_round_trip_and_refusals():
    key = P.checkpoint_key("src", "rep", ["b.t", "a.t"])
    assert key == P.checkpoint_key("src", "rep", ["a.t", "b.t"]) != P.checkpoint_key("src", "rep2", ["a.t"])
    prog = P.TableProgress(through=P.encode_key((5, "x")), through_inclusive=True, chunks=3, rows=300)
    prog.differences["missing"].append(P.encode_key((2, "b")))
    doc = json.loads(json.dumps(P.checkpoint_document(key, {"a.t": prog})))
    back = P.read_checkpoint(doc, key)["a.t"]
    assert back == prog and P.decode_key(back.through) == (5, "x")
    with pytest.raises(P.ParityError, match="another comparison"):
        P.read_checkpoint(doc, "other")
    with pytest.raises(P.ParityError, match="not a drpoc parity checkpoint"):
        P.read_checkpoint({"format": "x"}, key)


def test_key_text():
    assert P.key_text((42,)) == "42" and P.key_text((7, "a")) == "(7, a)" and P.key_text((b"\x01",)) == "0x01"


# --- adapters and the command line, before any server ---------------------------------------------------------

def test_probe_with_no_tables_configured_is_skipped():
    assert probes.tables_match(tables="", configuration={"inventory": "/nonexistent"}) is True
    assert probes.tables_match(tables=[], configuration={"inventory": "/nonexistent"}) is True


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--chunk-time", "0"], "--chunk-time must be a positive"),
    (["--tables", "a b"], "schema.table"),
    (["--resume", "--no-checkpoint"], "--resume needs a checkpoint"),
])
def test_cli_refuses_bad_input_with_exit_2(argv, message, capsys):
    assert cli.main(["parity", "--inventory", "/nonexistent.yaml", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_missing_inventory_is_exit_2_with_the_fix(capsys):
    assert cli.main(["parity", "--inventory", "/nonexistent.yaml"]) == 2
    err = capsys.readouterr().err
    assert "no inventory file" in err and "Traceback" not in err


def test_text_report_names_keys_only():
    result = {"verdict": "differs", "rows": 10, "seconds": 0.5, "mode": "gtid", "workers": 2, "paused_seconds": 0,
              "tables": [{"table": "db.t", "status": "differs", "rows": 10, "key": ["a", "b"],
                          "counts": {"missing": 1, "extra": 0, "changed": 2}, "missing": ["(1, x)"],
                          "changed": ["(2, y)", "(3, z)"], "unsettled_chunks": 0}]}
    text = _text(result)
    assert "1 missing on the replica: key a, b = (1, x)" in text and "2 changed: key a, b = (2, y), (3, z)" in text
    assert "verdict: DIFFERS" in text


def test_the_journal_keeps_per_table_verdicts():
    d = recorder.start()
    try:
        recorder.parity({"verdict": "differs", "mode": "gtid", "rows": 3, "seconds": 0.1,
                         "tables": [{"table": "testdb.ping", "status": "differs", "rows": 3,
                                     "counts": {"missing": 1}, "missing": ["7"], "key": ["id"]}]})
        assert d.parity[0]["tables"] == [{"table": "testdb.ping", "status": "differs", "rows": 3,
                                          "counts": {"missing": 1}, "missing": ["7"]}]
        assert d.has_event("parity_checked")
        result = DrillResult(run_id="r", parity=d.parity)
        assert DrillResult.from_dict(result.to_dict()).parity == d.parity
        assert "parity" not in DrillResult(run_id="r").to_dict()
    finally:
        recorder.finish()


# --- the checkpoint under parallel workers ----------------------------------------------------------------------

def test_chunks_finishing_out_of_order_checkpoint_only_the_contiguous_prefix():
    """Workers finish chunks in any order; a resume starts after `through`, so the checkpoint may only cover
    chunks with no unfinished chunk before them — else a crash would skip the unfinished one for ever."""
    from drpoc_chaos.services.parity import ParityRun, _TableState
    run = ParityRun.__new__(ParityRun)  # bookkeeping only: no server is opened
    run.rows_done = 0
    state = _TableState(SINGLE, P.TableProgress())
    chunks = [P.Chunk(0, None, (100,)), P.Chunk(1, (100,), (200,)), P.Chunk(2, (200,), None)]
    for c in chunks:
        state.chunks[c.index] = c

    def result(rows):
        return {"rows": rows, "seconds": 0.01, "rounds": 1}

    run._record_chunk(state, chunks[2], result(7))
    run._record_chunk(state, chunks[1], result(100))
    assert run.rows_done == 107  # progress counts every finished chunk...
    # ...the checkpoint none of them
    assert (state.progress.chunks, state.progress.rows, state.progress.through) == (0, 0, None)
    run._record_chunk(state, chunks[0], result(100))
    prog = state.progress
    assert (prog.chunks, prog.rows, prog.done) == (3, 207, True) and not state.finished and not state.chunks
