"""Data parity of whole schemas between the inventory's source and replica (docs/PARITY.md).

Tables are cut into key chunks (core/parity.py); worker threads — one connection per server each — checksum a
chunk on the source, read the source's replication position, wait on the replica until it has applied that
position (MASTER_GTID_WAIT / WAIT_FOR_EXECUTED_GTID_SET), and checksum the chunk there. Equal: done. Otherwise the
source is read once more: a replica equal to that second read was only behind; a source that changed between its two
reads means writes touched the chunk (re-checked, bounded); a source that did not change while the replica, read in
between, holds something else is a real difference — narrowed to the keys of the rows that differ, each confirmed
by a second read by key. Read-only on both servers: SELECTs and session variables only.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import pymysql
import pymysql.cursors

from .. import db
from ..core import parity as P
from ..core import recorder
from ..inventory import Inventory, MysqlEndpoint
from ..replication.dialect import Dialect
from ..replication.status import ReplicaStatusParseError
from . import replica as replica_service
from .errors import StepFailed

logger = logging.getLogger("chaostoolkit")

SESSION_SETUP = ("SET SESSION time_zone = '+00:00'",  # TIMESTAMP columns read alike on both servers
                 "SET SESSION TRANSACTION READ ONLY")  # a parity check cannot write, whatever it is asked
BUCKET_ROWS = 500  # a differing chunk is split into buckets of about this many rows before keys are read
MAX_BUCKETS = 4096
KEYS_SHOWN = 1000  # keys kept per kind and table in a result; the counts are always complete


@dataclass
class Options:
    selection: P.Selection = field(default_factory=P.Selection)
    workers: int = 4
    chunk_seconds: float = 0.25
    chunk_rows: int = 20_000  # first chunk of each table, then adapted to chunk_seconds
    max_rounds: int = 5  # re-checks of a chunk the writes keep changing before it is called unsettled
    wait_timeout: float = 30.0  # the replica must reach the source's position within this, per round
    settle_seconds: float = 5.0  # without GTID: a difference must persist this long to count
    max_lag: float | None = 10.0  # pause while the replica is further behind (seconds); None: no limit
    max_threads_running: int | None = 25  # pause while the source runs more threads; None: no limit
    max_pause_seconds: float = 300.0  # give up (incomplete, checkpoint kept) after pausing this long in one go
    max_seconds: float | None = None  # stop cleanly after this long (incomplete, checkpoint kept)
    checkpoint: Path | None = None
    resume: bool = False
    progress: Callable[[str], None] | None = None
    progress_interval: float = 1.0


class Incomplete(Exception):
    """The run stopped before every chunk was compared (time budget, load pause too long, interrupted)."""


class ReplicaBehind(StepFailed):
    """The replica did not reach the source's position in time: no chunk can be compared, so the run stops."""


# --- connections ---------------------------------------------------------------------------------------------

class _Servers:
    """Per-thread connections to the source and the replica with the session set up; every connection opened is
    closed at the end."""

    def __init__(self, inv: Inventory, secrets: Mapping | None):
        self.inv, self.secrets = inv, secrets
        self._local = threading.local()
        self._pools: list[db.DbPool] = []
        self._lock = threading.Lock()
        self._ready: set[int] = set()

    def _pool(self) -> db.DbPool:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = db.DbPool()
            with self._lock:
                self._pools.append(pool)
        return pool

    def run(self, endpoint: MysqlEndpoint, sql: str, args: Sequence[Any] | None = None) -> list[tuple]:
        pool = self._pool()
        conn = pool.get(endpoint, self.inv, self.secrets)
        verb = db.sql_verb(sql)
        try:
            with conn.cursor(pymysql.cursors.Cursor) as cur:
                if id(conn) not in self._ready:
                    for statement in SESSION_SETUP:
                        cur.execute(statement)
                    with self._lock:
                        self._ready.add(id(conn))
                cur.execute(sql, args)
                return list(cur.fetchall())
        except pymysql.MySQLError as exc:
            error = db.db_error(exc, endpoint, verb)
            if error.connection_lost:
                with self._lock:
                    self._ready.discard(id(conn))
                pool.discard(endpoint)
            raise error from exc

    def close(self) -> None:
        for pool in self._pools:
            pool.close_all()


# --- discovery -----------------------------------------------------------------------------------------------

_TABLES = ("SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES "
           "WHERE TABLE_TYPE = 'BASE TABLE' AND {where}")
_COLUMNS = ("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), IS_NULLABLE "
            "FROM information_schema.COLUMNS WHERE {where} ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION")
_INDEXES = ("SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME "
            "FROM information_schema.STATISTICS WHERE {where}")


def _catalogue(servers: _Servers, endpoint: MysqlEndpoint, selection: P.Selection) -> dict[str, P.TableSpec]:
    where, params = selection.schema_filter()
    tables = {(s, t): int(n) for s, t, n in servers.run(endpoint, _TABLES.format(where=where), params)
              if selection.wants(s, t)}
    columns: dict[tuple, list[P.Column]] = {}
    for s, t, c, typ, nullable in servers.run(endpoint, _COLUMNS.format(where=where), params):
        if (s, t) in tables:
            columns.setdefault((s, t), []).append(P.Column(str(c), str(typ), nullable == "YES"))
    indexes: dict[tuple, list[dict]] = {}
    for s, t, name, non_unique, seq, col in servers.run(endpoint, _INDEXES.format(where=where), params):
        if (s, t) in tables:
            indexes.setdefault((s, t), []).append({"INDEX_NAME": name, "NON_UNIQUE": non_unique,
                                                  "SEQ_IN_INDEX": seq, "COLUMN_NAME": col})
    out = {}
    for (s, t), rows in tables.items():
        cols = tuple(columns.get((s, t), ()))
        key, kind = P.pick_key(indexes.get((s, t), []), {c.name: c.nullable for c in cols})
        out[f"{s}.{t}"] = P.TableSpec(str(s), str(t), cols, key, kind, rows)
    return out


# --- one run -------------------------------------------------------------------------------------------------

@dataclass
class _TableState:
    spec: P.TableSpec
    progress: P.TableProgress
    chunks: dict[int, P.Chunk] = field(default_factory=dict)
    finished: dict[int, dict[str, Any]] = field(default_factory=dict)  # results waiting for earlier chunks
    sizer: P.ChunkSizer = field(default_factory=P.ChunkSizer)
    density: float = 1.0  # rows per integer key value
    seconds: float = 0.0
    rechecked: int = 0  # chunks not equal at the first replica read (writes in flight, or a difference)
    error: str | None = None


class ParityRun:
    def __init__(self, inv: Inventory, secrets: Mapping | None, options: Options):
        self.inv, self.secrets, self.o = inv, secrets, options
        self.servers = _Servers(inv, secrets)
        self.src, self.rep = inv.source, inv.replica
        self.mode = "gtid"
        self.paused = 0.0
        self.rows_done = 0
        self.started = time.monotonic()
        self._last_progress = 0.0
        self._last_checkpoint = 0.0
        self._last_load_check = 0.0

    # ---- positions --------------------------------------------------------------------------------------
    def _dialects(self) -> None:
        # the main thread's connections serve the catalogue and the load checks too: each new PyMySQL connection
        # costs ~20 ms of client CPU (it builds a TLS context), as much as a chunk of a hundred thousand rows
        pool = self.servers._pool()
        self.src_dialect: Dialect = replica_service.dialect_of(self.src, self.inv, self.secrets, pool)
        self.rep_dialect: Dialect = replica_service.dialect_of(self.rep, self.inv, self.secrets, pool)
        pos = self.servers.run(self.src, self.src_dialect.executed_gtid)[0][0]
        self.mode = "gtid" if pos else "settle"

    def _position(self) -> str | None:
        if self.mode != "gtid":
            return None
        return str(self.servers.run(self.src, self.src_dialect.executed_gtid)[0][0])

    def _sync(self, pos: str | None) -> None:
        """The replica has applied at least `pos` (GTID mode); without GTIDs nothing to wait for."""
        if pos is None:
            return
        r = self.servers.run(self.rep, self.rep_dialect.gtid_wait(), (pos, float(self.o.wait_timeout)))[0][0]
        if not self.rep_dialect.gtid_wait_done(r):
            raise ReplicaBehind(f"replica {self.rep.host} did not reach the source's position {pos} within "
                             f"{self.o.wait_timeout:g}s: is replication running (SHOW REPLICA STATUS)? Raise "
                             f"--wait-timeout for a replica that is far behind")

    # ---- reads ------------------------------------------------------------------------------------------
    def _checksum(self, endpoint: MysqlEndpoint, spec: P.TableSpec, chunk: P.Chunk) -> tuple[int, int]:
        sql, args = P.chunk_checksum_sql(spec, chunk)
        cnt, crc = self.servers.run(endpoint, sql, args)[0]
        return int(cnt), int(crc)

    def _settle_pause(self, since: float) -> None:
        """Without GTIDs a replica cannot be waited for: a difference must outlast `settle_seconds`."""
        if self.mode != "gtid":
            left = self.o.settle_seconds - (time.monotonic() - since)
            if left > 0:
                time.sleep(left)

    # ---- one chunk --------------------------------------------------------------------------------------
    def compare_chunk(self, spec: P.TableSpec, chunk: P.Chunk) -> dict[str, Any]:
        """{"rows", "seconds", "rounds", "diff": RowDiff | None, "unsettled": bool, "differs": bool}"""
        t0 = time.monotonic()
        stable_sightings = 0
        first_seen = t0

        def result(rows: int, rounds: int, **kw: Any) -> dict[str, Any]:
            return {"rows": rows, "seconds": time.monotonic() - t0, "rounds": rounds, "differs": False, **kw}

        for rounds in range(1, self.o.max_rounds + 1):
            before = self._checksum(self.src, spec, chunk)
            self._sync(self._position())
            on_replica = self._checksum(self.rep, spec, chunk)
            if on_replica == before:
                return result(before[0], rounds)
            # The second source read: per bucket for a large chunk with a key, so that a chunk that really differs
            # is narrowed from it without reading it again (its buckets combine into the chunk's checksum).
            n = min(MAX_BUCKETS, before[0] // BUCKET_ROWS) if spec.key and before[0] > 2 * BUCKET_ROWS else 0
            source_buckets = self._buckets(self.src, spec, chunk, n) if n else {}
            after = P.combine_buckets(source_buckets) if n else self._checksum(self.src, spec, chunk)
            if on_replica == after:
                return result(after[0], rounds, rechecked=True)
            if before != after:  # writes are landing in this chunk: let them pass, then look again
                time.sleep(min(0.05 * 2 ** rounds, 1.0))
                continue
            # the source held still while the replica, read in between, held something else
            stable_sightings += 1
            if spec.key:
                chosen = None
                if n:
                    replica_buckets = self._buckets(self.rep, spec, chunk, n)
                    chosen = sorted(b for b in set(source_buckets) | set(replica_buckets)
                                    if source_buckets.get(b) != replica_buckets.get(b))
                if chosen != []:
                    diff = self._narrow(spec, chunk, (n, chosen) if chosen else None)
                    if diff or diff.changing:
                        return result(after[0], rounds, differs=bool(diff), diff=diff, unsettled=bool(diff.changing))
            elif stable_sightings >= 2:  # no key: a whole-table difference, seen twice
                return result(after[0], rounds, differs=True)
            if stable_sightings == 1:
                first_seen = time.monotonic()
            self._settle_pause(first_seen)
        return result(before[0], self.o.max_rounds, unsettled=True)

    def _buckets(self, endpoint: MysqlEndpoint, spec: P.TableSpec, chunk: P.Chunk,
                 n: int) -> dict[int, tuple[int, int]]:
        sql, args = P.bucket_checksums_sql(spec, chunk, n)
        return {int(b): (int(cnt), int(crc)) for b, cnt, crc in self.servers.run(endpoint, sql, args)}

    def _bracket(self, spec: P.TableSpec, chunk: P.Chunk | None, keys: Sequence[tuple] = (),
                 buckets: tuple[int, list[int]] | None = None) -> P.RowDiff:
        """Rows' hashes read on the source, on the replica once it has applied what the source had committed, and on
        the source again: a chunk's rows (only those in `buckets` when given), or the rows of `keys`."""
        if chunk is not None:
            batches = [P.bucket_rows_sql(spec, chunk, *buckets) if buckets else P.rows_sql(spec, chunk)]
        else:
            batches = [P.key_in_sql(spec, keys[i:i + 500]) for i in range(0, len(keys), 500)]
        before = self._fetch(self.src, batches)
        self._sync(self._position())
        on_replica = self._fetch(self.rep, batches)
        return P.classify_rows(before, on_replica, self._fetch(self.src, batches))

    def _fetch(self, endpoint: MysqlEndpoint, batches: Sequence[tuple[str, list[Any]]]) -> dict[tuple, int]:
        out: dict[tuple, int] = {}
        for sql, args in batches:
            for row in self.servers.run(endpoint, sql, args):
                out[tuple(row[:-1])] = int(row[-1])
        return out

    def _narrow(self, spec: P.TableSpec, chunk: P.Chunk, buckets: tuple[int, list[int]] | None) -> P.RowDiff:
        """The keys of the rows that differ in a chunk (in its differing buckets): a row is a difference once it has
        been seen differing, the same way, with the source holding still, in two reads (the second by key)."""
        first = self._bracket(spec, chunk, buckets=buckets)
        first_seen = time.monotonic()
        pending = {k: kind for kind in ("missing", "extra", "changed") for k in getattr(first, kind)}
        changing = set(first.changing)
        confirmed = P.RowDiff()
        for _ in range(self.o.max_rounds):
            if not pending and not changing:
                break
            self._settle_pause(first_seen)
            again = self._bracket(spec, None, sorted(set(pending) | changing, key=P.sort_key))
            new_pending = {}
            for kind in ("missing", "extra", "changed"):
                for k in getattr(again, kind):
                    if pending.get(k) == kind:
                        getattr(confirmed, kind).append(k)
                    else:
                        new_pending[k] = kind
            pending, changing = new_pending, set(again.changing)
            first_seen = time.monotonic()
        confirmed.changing = sorted(set(pending) | changing, key=P.sort_key)
        return confirmed

    # ---- chunk plans ------------------------------------------------------------------------------------
    def _plan(self, state: _TableState) -> Iterator[P.Chunk]:
        spec, prog = state.spec, state.progress
        start = P.decode_key(prog.through)
        start_inclusive = not prog.through_inclusive
        index = prog.chunks
        if not spec.key:
            yield P.Chunk(index)
            return
        if spec.integer_key:
            col = P.quote_ident(spec.key[0])
            lo, hi = self.servers.run(self.src, f"SELECT MIN({col}), MAX({col}) FROM {spec.qualified}")[0]
            if lo is None:  # empty on the source: the replica must be empty too
                yield P.Chunk(index, lower=start, lower_inclusive=start_inclusive)
                return
            # TABLE_ROWS is an estimate (0 for a table never analysed): then assume a dense key and let the
            # observed chunks correct it
            state.density = max(1e-6, spec.estimated_rows / max(1, int(hi) - int(lo) + 1)) \
                if spec.estimated_rows > 0 else 1.0
            cursor = int(start[0]) if start is not None else int(lo)
            lower: tuple | None = start
            while True:
                end = cursor + P.integer_width(state.sizer.rows, state.density)
                if end > int(hi):
                    yield P.Chunk(index, lower=lower, lower_inclusive=start_inclusive if lower == start else True)
                    return
                yield P.Chunk(index, lower=lower, upper=(end,),
                              lower_inclusive=start_inclusive if lower == start else True, upper_inclusive=False)
                index += 1
                lower, cursor = (end,), end
        # any other key: walk it on the source for each next upper bound (pt-table-checksum's nibbling)
        lower, lower_inclusive = start, start_inclusive
        while True:
            sql, args = P.boundary_sql(spec, lower, state.sizer.rows)
            rows = self.servers.run(self.src, sql, args)
            if not rows:
                yield P.Chunk(index, lower=lower, lower_inclusive=lower_inclusive)
                return
            upper = tuple(rows[0])
            yield P.Chunk(index, lower=lower, upper=upper, lower_inclusive=lower_inclusive, upper_inclusive=True)
            index += 1
            lower, lower_inclusive = upper, False

    # ---- load -------------------------------------------------------------------------------------------
    def _load(self) -> list[str]:
        over = []
        if self.o.max_threads_running is not None:
            rows = self.servers.run(self.src, "SHOW GLOBAL STATUS LIKE 'Threads_running'")
            running = int(rows[0][1]) if rows else 0
            if running > self.o.max_threads_running:
                over.append(f"source Threads_running {running} > {self.o.max_threads_running}")
        if self.o.max_lag is not None:
            try:
                st = replica_service.read_status(self.inv, self.secrets, pool=self.servers._pool())
            except ReplicaStatusParseError as exc:  # a transient state (MariaDB's 'Preparing'): look again later
                logger.debug("parity: replica status unreadable this time: %s", exc)
                return over
            lag = st.seconds_behind_source if st else None
            if lag is None:
                over.append("replica not replicating (Seconds_Behind_Source NULL)")
            elif lag > self.o.max_lag:
                over.append(f"replica lag {lag}s > {self.o.max_lag:g}s")
        return over

    def _throttle(self) -> None:
        now = time.monotonic()
        if now - self._last_load_check < 1.0:
            return
        self._last_load_check = now
        over = self._load()
        if not over:
            return
        t0 = time.monotonic()
        self._say("pausing: " + "; ".join(over))
        while over:
            if time.monotonic() - t0 > self.o.max_pause_seconds:
                raise Incomplete(f"paused {self.o.max_pause_seconds:g}s for load limits ({'; '.join(over)}); "
                                 f"resume later with --resume")
            self._check_budget()
            time.sleep(0.5)
            over = self._load()
        self.paused += time.monotonic() - t0
        self._say(f"resuming after {time.monotonic() - t0:.1f}s")

    def _check_budget(self) -> None:
        if self.o.max_seconds is not None and time.monotonic() - self.started > self.o.max_seconds:
            raise Incomplete(f"stopped after the time budget of {self.o.max_seconds:g}s; resume with --resume")

    # ---- progress and checkpoint -----------------------------------------------------------------------
    def _say(self, msg: str) -> None:
        if self.o.progress:
            self.o.progress(msg)

    def _report_progress(self, total: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.o.progress or (not force and now - self._last_progress < self.o.progress_interval):
            return
        self._last_progress = now
        elapsed = now - self.started
        rate = self.rows_done / elapsed if elapsed > 0 else 0.0
        eta = P.eta_seconds(self.rows_done, max(total, self.rows_done), elapsed)
        self._say(f"parity: {self.rows_done:,} rows compared ({rate:,.0f} rows/s)"
                  + (f", ETA {eta:.0f}s" if eta is not None else ""))

    def _save_checkpoint(self, force: bool = False) -> None:
        if self.o.checkpoint is None:
            return
        now = time.monotonic()
        if not force and now - self._last_checkpoint < 1.0:
            return
        self._last_checkpoint = now
        doc = P.checkpoint_document(self.key, {t: s.progress for t, s in self.states.items()})
        path = self.o.checkpoint
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)

    def _load_checkpoint(self) -> dict[str, P.TableProgress]:
        path = self.o.checkpoint
        if not self.o.resume or path is None or not path.exists():
            return {}
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise P.ParityError(f"cannot read the checkpoint {path} ({exc}): remove it or run without --resume") \
                from None
        return P.read_checkpoint(doc, self.key)

    # ---- results ----------------------------------------------------------------------------------------
    def _record_chunk(self, state: _TableState, chunk: P.Chunk, res: dict[str, Any]) -> None:
        state.finished[chunk.index] = res
        state.seconds += res["seconds"]
        self.rows_done += res["rows"]
        if res["seconds"] > 0 and chunk.upper is not None and res["rounds"] == 1 and "diff" not in res:
            state.sizer.observe(res["rows"], res["seconds"])
            if state.spec.integer_key and chunk.lower is not None:
                width = int(chunk.upper[0]) - int(chunk.lower[0])
                state.density = 0.5 * state.density + 0.5 * max(res["rows"], 1) / max(width, 1)
        # (sized on plain chunks only: re-checks and narrowing say nothing about the checksum's speed)
        # the checkpoint holds only the contiguous prefix of finished chunks: a resume redoes the rest
        prog = state.progress
        while prog.chunks in state.finished:
            done, res = state.chunks.pop(prog.chunks), state.finished.pop(prog.chunks)
            prog.chunks += 1
            prog.rows += res["rows"]
            prog.unsettled += bool(res.get("unsettled"))
            state.rechecked += res["rounds"] > 1 or bool(res.get("rechecked"))
            diff: P.RowDiff | None = res.get("diff")
            if diff is not None:
                for kind in ("missing", "extra", "changed"):
                    prog.differences[kind] += [P.encode_key(k) for k in getattr(diff, kind)]
            elif res.get("differs"):
                prog.differences["changed"].append(None)  # a table without a key: different, rows unknown
            if done.upper is None:
                prog.done = True
            else:
                prog.through, prog.through_inclusive = P.encode_key(done.upper), done.upper_inclusive

    def _table_result(self, label: str, state: _TableState | None, status_override: str | None = None,
                      note: str | None = None) -> dict[str, Any]:
        if state is None:
            return {"table": label, "status": status_override, "note": note}
        prog, spec = state.progress, state.spec
        diffs = prog.differences
        counts = {k: len(v) for k, v in diffs.items()}
        if state.error:
            status = "error"
        elif any(counts.values()):
            status = "differs"
        elif prog.unsettled or not prog.done:
            status = "unsettled" if prog.unsettled else "incomplete"
        else:
            status = "equal"
        out: dict[str, Any] = {"table": label, "status": status, "key": list(spec.key), "key_kind": spec.key_kind,
                               "rows": prog.rows, "chunks": prog.chunks, "seconds": round(state.seconds, 3),
                               "counts": counts, "unsettled_chunks": prog.unsettled,
                               "rechecked_chunks": state.rechecked}
        if spec.key:
            out.update({k: [P.key_text(P.decode_key(x) or ()) for x in diffs[k][:KEYS_SHOWN]] for k in diffs})
        else:
            out["note"] = ("no primary or unique NOT NULL key: compared as one chunk; rows that differ cannot be "
                           "named")
        if state.error:
            out["error"] = state.error
        return out

    # ---- the whole run ----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            self.servers.close()

    def _run(self) -> dict[str, Any]:
        self._dialects()
        on_source = _catalogue(self.servers, self.src, self.o.selection)
        on_replica = _catalogue(self.servers, self.rep, self.o.selection)
        labels = sorted(set(on_source) | set(on_replica))
        self.key = P.checkpoint_key(str(self.src), str(self.rep), labels)
        stored = self._load_checkpoint()
        results: dict[str, dict[str, Any]] = {}
        self.states: dict[str, _TableState] = {}
        for label in labels:
            s, r = on_source.get(label), on_replica.get(label)
            if s is None:
                results[label] = self._table_result(label, None, "differs", "on the replica only (extra table)")
            elif r is None:
                results[label] = self._table_result(label, None, "differs", "missing on the replica")
            elif s.signature() != r.signature():
                results[label] = self._table_result(label, None, "differs",
                                                    "columns differ (names, types or nullability)")
            else:
                try:
                    s.qualified, [P.quote_ident(c.name) for c in s.columns]
                except P.ParityError as exc:
                    results[label] = self._table_result(label, None, "error", str(exc))
                    continue
                state = _TableState(s, stored.get(label) or P.TableProgress(),
                                    sizer=P.ChunkSizer(target_seconds=self.o.chunk_seconds, rows=self.o.chunk_rows))
                self.states[label] = state
        total = sum(st.spec.estimated_rows for st in self.states.values())
        self.rows_done = resumed = sum(st.progress.rows for st in self.states.values())
        incomplete: str | None = None
        if stored:
            self._say(f"parity: resuming, {self.rows_done:,} rows already compared")
        self._say(f"parity: {len(self.states)} tables (~{total:,} rows), {self.o.workers} workers, "
                  f"{'GTID position' if self.mode == 'gtid' else 'settle (no GTID)'} mode")
        try:
            self._drive(total)
        except Incomplete as exc:
            incomplete = str(exc)
            self._say(f"parity: {exc}")
        except KeyboardInterrupt:
            self._save_checkpoint(force=True)
            raise
        self._save_checkpoint(force=True)
        for label, state in self.states.items():
            results[label] = self._table_result(label, state)
        tables = [results[label] for label in labels]
        statuses = {t["status"] for t in tables}
        if "differs" in statuses:
            verdict, code = "differs", 1
        elif statuses - {"equal"} or incomplete:
            verdict, code = "incomplete", 2
        else:
            verdict, code = "equal", 0
        elapsed = time.monotonic() - self.started
        if code != 2 and self.o.checkpoint is not None and self.o.checkpoint.exists():
            self.o.checkpoint.unlink()  # a finished comparison leaves nothing to resume
        self._report_progress(total, force=True)
        return {"verdict": verdict, "exit_code": code, "mode": self.mode, "tables": tables,
                "rows": self.rows_done, "seconds": round(elapsed, 3),
                "rows_per_second": round(self.rows_done / elapsed) if elapsed > 0 else None,
                "workers": self.o.workers, "paused_seconds": round(self.paused, 3),
                "source": str(self.src), "replica": str(self.rep), "incomplete": incomplete,
                "resumed_rows": resumed,
                "checkpoint": str(self.o.checkpoint) if self.o.checkpoint and code == 2 else None}

    def _drive(self, total: int) -> None:
        plans = {label: self._plan(st) for label, st in self.states.items() if not st.progress.done}
        # longest first: a table without a key is one long chunk, then the biggest tables (less idle at the end)
        order = sorted(plans, key=lambda t: (bool(self.states[t].spec.key), -self.states[t].spec.estimated_rows))
        in_flight: dict[Future, tuple[str, P.Chunk]] = {}
        with ThreadPoolExecutor(max_workers=self.o.workers, thread_name_prefix="parity") as pool:
            try:
                while True:
                    while order and len(in_flight) < 2 * self.o.workers:
                        self._check_budget()
                        self._throttle()
                        label = order[0]
                        state = self.states[label]
                        try:
                            chunk = next(plans[label])
                        except StopIteration:
                            order.pop(0)
                            continue
                        except db.DbError as exc:
                            state.error = str(exc)
                            order.pop(0)
                            continue
                        state.chunks[chunk.index] = chunk
                        in_flight[pool.submit(self.compare_chunk, state.spec, chunk)] = (label, chunk)
                    if not in_flight:
                        return
                    done, _ = wait(list(in_flight), timeout=1.0, return_when=FIRST_COMPLETED)
                    for fut in done:
                        label, chunk = in_flight.pop(fut)
                        state = self.states[label]
                        try:
                            self._record_chunk(state, chunk, fut.result())
                        except ReplicaBehind as exc:
                            raise Incomplete(str(exc)) from None
                        except (db.DbError, StepFailed) as exc:
                            state.error = state.error or str(exc)
                            if label in order:
                                order.remove(label)
                    self._save_checkpoint()
                    self._report_progress(total)
            except BaseException:
                for fut in in_flight:
                    fut.cancel()
                raise


def default_checkpoint(inv: Inventory) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "drpoc" / "parity" / f"{inv.name or 'inventory'}.json"


def compare_tables(inv: Inventory, secrets: Mapping | None = None, options: Options | None = None) -> dict[str, Any]:
    """Compare the chosen tables on the inventory's source and replica. Returns the full result (docs/PARITY.md);
    records the per-table verdicts in the running drill, if any."""
    result = ParityRun(inv, secrets, options or Options()).run()
    recorder.parity(result)
    return result
