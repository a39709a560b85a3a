"""`drpoc parity` against real servers: seeded tables compare equal; a changed, a missing and an extra row made on the
replica (unlogged) are each found and named by key; with writes running during full checks no difference is
reported that is not there; an interrupted check resumes from its checkpoint; the command's exit codes and JSON.

Runs against the lab (the `ready` fixture). To run it against another source/replica pair — a scratch pair on
127.0.0.1, say — set DRPOC_PARITY_INVENTORY to that pair's inventory: the lab is then not touched at all.

Divergences are only ever made where the running writers cannot trip over them (the replica applies row events and
would stop on a row it lacks), and every row changed on the replica is put back as the source has it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from drpoc_chaos.core.parity import Selection
from drpoc_chaos.inventory import load_inventory
from drpoc_chaos.lab import seed_data
from drpoc_chaos.services import parity, writer

from .support import CFG

pytestmark = pytest.mark.lab

SCHEMA = "drpoc_paritytest"
ROWS = 20_000
DRPOC = [sys.executable, "-m", "drpoc_chaos.cli"]


@pytest.fixture(scope="module")
def cfg():
    return {"inventory": os.environ["DRPOC_PARITY_INVENTORY"]} if os.environ.get("DRPOC_PARITY_INVENTORY") \
        else dict(CFG)


@pytest.fixture
def seeded(request, cfg):
    """The test schema seeded on the source and replicated; dropped (on the source, so on the replica) after."""
    if not os.environ.get("DRPOC_PARITY_INVENTORY"):
        request.getfixturevalue("ready")
    inv = load_inventory(cfg["inventory"])
    seed_data.seed(inv, ROWS, schema=SCHEMA)
    yield inv
    from drpoc_chaos import db
    db.execute(inv.source, inv, f"DROP DATABASE IF EXISTS `{SCHEMA}`")


def compare(inv, **kw) -> dict:
    opts = dict(selection=Selection.parse(SCHEMA), max_lag=None, workers=3)
    opts.update(kw)
    return parity.compare_tables(inv, None, parity.Options(**opts))


def by_table(result: dict) -> dict[str, dict]:
    return {t["table"].split(".", 1)[1]: t for t in result["tables"]}


def test_seed_data_is_realistic_and_compares_equal(seeded):
    from drpoc_chaos import db
    inv = seeded
    counts = seed_data.plan(ROWS)
    cols = db.execute(inv.source, inv, "SELECT TABLE_NAME t, COLUMN_NAME c, DATA_TYPE d, IS_NULLABLE n, "
                                       "CHARACTER_SET_NAME cs FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s",
                      (SCHEMA,))
    types = {r["d"] for r in cols}
    assert {"bigint", "int", "decimal", "varchar", "text", "datetime", "double"} <= types
    assert {r["cs"] for r in cols if r["cs"]} == {"utf8mb4"}
    assert db.execute(inv.source, inv, f"SELECT COUNT(*) n FROM {SCHEMA}.customers WHERE email IS NULL")[0]["n"] > 0
    assert db.execute(inv.source, inv, f"SELECT COUNT(*) n FROM {SCHEMA}.customers WHERE name LIKE '%%ö%%' OR "
                                       f"name LIKE '%%佐%%'")[0]["n"] > 0

    result = compare(inv)
    assert result["verdict"] == "equal" and result["exit_code"] == 0, result
    tables = by_table(result)
    assert {t: tables[t]["rows"] for t in tables} == counts
    assert tables["order_lines"]["key"] == ["order_id", "line_no"]  # the composite primary key
    assert tables["tags"]["key"] == ["tag"]
    assert tables["audit_log"]["key"] == [] and "no primary or unique" in tables["audit_log"]["note"]
    assert result["mode"] == "gtid"


def test_each_divergence_is_found_and_named_by_key(seeded):
    inv = seeded
    made = [("changed", "customers", ["id"], [777], "name"),  # first letter's case flipped: equal to a *_ci eye
            ("missing", "order_lines", ["order_id", "line_no"], [500, 2], None),
            ("extra", "tags", ["tag"], ["zz-extra-on-replica"], None),
            ("changed", "audit_log", ["at"], ["2024-01-01 00:00:05"], "action")]
    try:
        for kind, table, key_cols, key, column in made:
            seed_data.inject_divergence(inv, kind, SCHEMA, table, key_cols, key, column)
        result = compare(inv)
        tables = by_table(result)
        assert result["verdict"] == "differs" and result["exit_code"] == 1
        assert tables["customers"]["changed"] == ["777"]
        assert tables["customers"]["counts"] == {"missing": 0, "extra": 0, "changed": 1}
        assert tables["order_lines"]["missing"] == ["(500, 2)"]
        assert tables["order_lines"]["counts"] == {"missing": 1, "extra": 0, "changed": 0}
        assert tables["tags"]["extra"] == ["zz-extra-on-replica"]
        assert tables["tags"]["counts"] == {"missing": 0, "extra": 1, "changed": 0}
        assert tables["audit_log"]["status"] == "differs"  # no key: the table differs, rows cannot be named
        text = json.dumps(result)
        assert "Müller" not in text and "example.org" not in text and "SKU-" not in text  # keys, never values
    finally:
        for _, table, key_cols, key, _ in made:
            seed_data.repair_rows(inv, SCHEMA, table, key_cols, [key])
    assert compare(inv)["verdict"] == "equal"


def test_live_writes_never_make_a_false_difference(seeded):
    """The project's under-load writer (testdb.ping) and a churn of updates/inserts on the seeded tables run
    through several full checks with small chunks; only the one real divergence (an extra row the writers never
    touch) may be reported, every time."""
    inv = seeded
    writer.ensure_ping_table(inv)
    stop = threading.Event()
    out: dict = {}
    churn = threading.Thread(target=lambda: out.update(churn=seed_data.churn(inv, 25, rate=300, schema=SCHEMA,
                                                                               stop=stop.is_set)))
    load = threading.Thread(target=lambda: out.update(ping=writer.write_burst(inv, duration=25, rate=100)))
    key = ["zz-live-extra"]
    seed_data.inject_divergence(inv, "extra", SCHEMA, "tags", ["tag"], key)
    results = []
    churn.start()
    load.start()
    try:
        time.sleep(1)
        while len(results) < 4 and load.is_alive():
            # small chunks (narrowed row by row) and larger ones (narrowed through buckets) in turn
            small = len(results) % 2 == 0
            result = parity.compare_tables(inv, None, parity.Options(
                selection=Selection.parse([SCHEMA, "testdb.ping"]), max_lag=None, workers=3,
                chunk_rows=1000 if small else 5000, chunk_seconds=0.01 if small else 0.05))
            if churn.is_alive() and load.is_alive():  # the writes ran from before its start to after its end
                results.append(result)
    finally:
        stop.set()
        churn.join(40)
        load.join(40)
        seed_data.repair_rows(inv, SCHEMA, "tags", ["tag"], [key])
    assert len(results) >= 2, "the writers stopped before two full checks could run"
    assert out["churn"]["update"] > 100 and out["ping"]["acknowledged"] > 100
    for r in results:
        tables = {t["table"]: t for t in r["tables"]}
        wrong = {name: t for name, t in tables.items() if name != f"{SCHEMA}.tags" and t["status"] != "equal"}
        assert not wrong, wrong
        assert tables[f"{SCHEMA}.tags"]["extra"] == key and tables[f"{SCHEMA}.tags"]["counts"]["changed"] == 0
        assert tables[f"{SCHEMA}.tags"]["counts"]["missing"] == 0
    # the writes did land in chunks while they were compared: the re-check path ran, so this test can fail
    assert sum(t["rechecked_chunks"] for r in results for t in r["tables"]) > 0


def test_an_interrupted_check_resumes_from_its_checkpoint(seeded, tmp_path):
    inv = seeded
    checkpoint = tmp_path / "cp.json"
    seen = []

    def interrupt_after_some_progress(msg: str) -> None:
        if msg.startswith("parity:") and "rows compared" in msg:
            seen.append(msg)
            if len(seen) == 3:
                raise KeyboardInterrupt  # what Ctrl-C does in the main thread

    # one worker: chunks finish in the order they were planned, so every finished chunk extends the
    # checkpoint's contiguous prefix (with several, the first chunks to finish may all lie past a slow one
    # and the checkpoint would rightly hold nothing yet)
    with pytest.raises(KeyboardInterrupt):
        compare(inv, chunk_rows=1000, chunk_seconds=0.001, checkpoint=checkpoint, workers=1,
                progress=interrupt_after_some_progress, progress_interval=0)
    saved = json.loads(checkpoint.read_text())
    done = sum(t["rows"] for t in saved["tables"].values())
    assert 0 < done < ROWS
    result = compare(inv, checkpoint=checkpoint, resume=True)
    assert result["verdict"] == "equal" and result["resumed_rows"] == done
    assert sum(t["rows"] for t in result["tables"]) == ROWS
    assert not checkpoint.exists()  # finished: nothing left to resume


def _drpoc(cfg, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(DRPOC + ["parity", "--inventory", cfg["inventory"], "--tables", SCHEMA, *args],
                          capture_output=True, text=True, timeout=300)


def test_command_exit_codes_json_and_resume(seeded, cfg, tmp_path):
    inv = seeded
    r = _drpoc(cfg, "--json", "--no-checkpoint")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["verdict"] == "equal" and len(out["tables"]) == 4
    assert "rows/s" in r.stderr  # progress on the terminal

    key = [4242]
    seed_data.inject_divergence(inv, "missing", SCHEMA, "customers", ["id"], key)
    try:
        r = _drpoc(cfg, "--no-checkpoint")
        assert r.returncode == 1, r.stderr
        assert "1 missing on the replica: key id = 4242" in r.stdout
    finally:
        seed_data.repair_rows(inv, SCHEMA, "customers", ["id"], [key])

    checkpoint = tmp_path / "cp.json"
    r = _drpoc(cfg, "--checkpoint", str(checkpoint), "--max-seconds", "0.000001", "--quiet")
    assert r.returncode == 2 and "INCOMPLETE" in r.stdout and checkpoint.exists(), r.stdout + r.stderr
    r = _drpoc(cfg, "--checkpoint", str(checkpoint), "--resume", "--quiet")
    assert r.returncode == 0 and "EQUAL" in r.stdout, r.stdout + r.stderr

    broken = yaml.safe_load(Path(cfg["inventory"]).read_text())
    broken["sites"][inv.replica.site]["database"]["mysql"]["port"] = 1  # nothing listens: cannot compare
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    r = _drpoc({"inventory": str(path)}, "--no-checkpoint")
    assert r.returncode == 2 and "CONNECT failed" in r.stderr and "Traceback" not in r.stderr


def test_without_gtid_the_settle_mode_finds_differences_that_last(seeded, monkeypatch):
    """A pair without GTIDs cannot be waited for: the source's position is ignored here to run the settle mode on
    real servers; a divergence must then persist `settle_seconds` before it is reported."""
    inv = seeded
    found_mode = parity.ParityRun._dialects

    def no_gtid(self):
        found_mode(self)
        self.mode = "settle"

    monkeypatch.setattr(parity.ParityRun, "_dialects", no_gtid)
    key = [321]
    seed_data.inject_divergence(inv, "changed", SCHEMA, "customers", ["id"], key, "name")
    try:
        t0 = time.monotonic()
        result = compare(inv, settle_seconds=1.5)
        assert result["mode"] == "settle" and by_table(result)["customers"]["changed"] == ["321"]
        assert time.monotonic() - t0 >= 1.5
        assert [t["table"] for t in result["tables"] if t["status"] != "equal"] == [f"{SCHEMA}.customers"]
    finally:
        seed_data.repair_rows(inv, SCHEMA, "customers", ["id"], [key])
