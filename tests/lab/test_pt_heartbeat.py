"""The heartbeat table is configurable: the real `pt-heartbeat --update` (Debian package percona-toolkit) writes
percona.heartbeat on the lab's source, and the lag probes read that table (`heartbeat: {table: percona.heartbeat,
format: pt-heartbeat}`) instead of writing their own rows."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pymysql
import pytest

from drpoc_chaos.inventory import clear_cache
from drpoc_chaos.lab.topology import HOSTS_BY_NAME, Paths
from drpoc_chaos.replication.probes import lag_within, replication_lag

from .support import variant

pytestmark = pytest.mark.lab
SOURCE_PORT = HOSTS_BY_NAME["aws-db"].mysql_port
REPLICA_PORT = HOSTS_BY_NAME["onprem-db"].mysql_port
RUN_TIME = 60  # pt-heartbeat stops by itself after this, whatever happens to the test


def query(port: int, sql: str) -> list[dict]:
    password = (Paths().secrets / "mysql_password").read_text().strip()
    with pymysql.connect(host="127.0.0.1", port=port, user="drpoc", password=password, autocommit=True,
                         cursorclass=pymysql.cursors.DictCursor, connect_timeout=5) as c, c.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


@pytest.fixture
def pt_heartbeat(ready, tmp_path):
    exe = shutil.which("pt-heartbeat")
    if exe is None:
        pytest.fail("pt-heartbeat is missing: apt-get install percona-toolkit (make test installs it)")
    query(SOURCE_PORT, "CREATE DATABASE IF NOT EXISTS percona")
    defaults = tmp_path / "pt.cnf"  # the password in a 0600 file, not on a command line
    defaults.write_text(f"[client]\nuser=drpoc\npassword={(Paths().secrets / 'mysql_password').read_text().strip()}\n"
                        f"host=127.0.0.1\nport={SOURCE_PORT}\n")
    defaults.chmod(0o600)
    log = open(tmp_path / "pt-heartbeat.log", "w")
    proc = subprocess.Popen([exe, f"--defaults-file={defaults}", "--update", "--create-table", "--utc",
                             "--database", "percona", "--table", "heartbeat", "--interval", "0.5",
                             "--run-time", f"{RUN_TIME}s"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not query(REPLICA_PORT, "SELECT 1 FROM information_schema.tables WHERE table_schema = 'percona' "
                                      "AND table_name = 'heartbeat'") or \
                not query(REPLICA_PORT, "SELECT ts FROM percona.heartbeat"):
            assert proc.poll() is None, (tmp_path / "pt-heartbeat.log").read_text()
            assert time.monotonic() < deadline, "pt-heartbeat's first row never reached the replica"
            time.sleep(0.5)
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # the pt-heartbeat we started, by its pid
            proc.wait(timeout=15)
        log.close()
        query(SOURCE_PORT, "DROP DATABASE IF EXISTS percona")


def test_lag_probes_read_pt_heartbeats_table(pt_heartbeat, tmp_path):
    clear_cache()
    cfg = variant(tmp_path, "pt-heartbeat",
                  lambda d: d.update(heartbeat={"table": "percona.heartbeat", "format": "pt-heartbeat"}))
    drpoc_rows_before = query(SOURCE_PORT, "SELECT server_id, ts FROM drpoc.heartbeat ORDER BY server_id")
    out = replication_lag(max_wait=5, configuration=cfg)
    assert out["source"] == "pt-heartbeat" and out["arrived"] is True and out["io"] == "Yes"
    assert 0 <= out["heartbeat_lag"] < 3, out
    assert lag_within(max_seconds=3, configuration=cfg) is True
    row = query(REPLICA_PORT, "SELECT * FROM percona.heartbeat WHERE server_id = 1")[0]
    assert row["file"] and row["position"], row  # pt-heartbeat's own row (drpoc's REPLACE leaves these NULL)
    # nothing was written to drpoc's own table meanwhile
    assert query(SOURCE_PORT, "SELECT server_id, ts FROM drpoc.heartbeat ORDER BY server_id") == drpoc_rows_before

    # pt-heartbeat stopped: its row ages, and the probe sees the lag grow instead of inventing a fresh one
    os.kill(pt_heartbeat.pid, signal.SIGTERM)
    pt_heartbeat.wait(timeout=15)
    time.sleep(3)
    stale = replication_lag(max_wait=1, configuration=cfg)
    assert stale["arrived"] is False and stale["heartbeat_lag"] >= 3, stale
    assert lag_within(max_seconds=1, configuration=cfg) is False
