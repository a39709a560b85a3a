"""`drpoc parity` against Percona's pt-table-checksum on the same rows, one run, side by side.

    sudo .venv/bin/python benchmarks/parity_vs_pt_table_checksum.py [--rows 1000000] [--inventory FILE]

Needs the lab up (`drpoc lab up`) or an inventory (`--inventory`, `DRPOC_INVENTORY`) whose MySQL user may create
schemas. Installs percona-toolkit with apt-get when pt-table-checksum is missing. Then:

1. `drpoc lab seed-data --rows N` on the source (schema drpoc_seed; `--reuse` keeps one already seeded);
2. three divergences on the replica, unlogged (`sql_log_bin = 0`): a changed row (customers), a missing row
   (order_lines, composite key), an extra row (tags, string key);
3. pt-table-checksum on drpoc_seed: replica found through a DSN table (`--recursion-method dsn=…`), checksums in
   its own `percona` schema (pt-table-checksum's requirement; dropped at the end) — the password goes through a
   0600 defaults file, never the command line;
4. `drpoc parity --tables drpoc_seed --json`;
5. wall time, the ratio, the source's (and replica's) mariadbd CPU time from /proc/<pid>/stat, and the verdicts;
6. the replica's rows put back as the source has them.

Target (issue 15): drpoc parity <= 0.5x pt-table-checksum's wall time, identical verdicts, and the differing keys
named. Bounded: each tool gets at most 900 s.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drpoc_chaos import db
from drpoc_chaos.inventory import load_inventory, resolve_secret
from drpoc_chaos.lab import seed_data

SCHEMA = seed_data.DEFAULT_SCHEMA
DIVERGENCES = [  # (kind, table, key columns, key, column)
    ("changed", "customers", ["id"], [4242], "name"),
    ("missing", "order_lines", ["order_id", "line_no"], [777, 3], None),
    ("extra", "tags", ["tag"], ["zz-benchmark-extra"], None),
]
TIMEOUT = 900


def ensure_pt_table_checksum() -> str:
    found = shutil.which("pt-table-checksum")
    if found:
        return found
    print("installing percona-toolkit (apt-get) …", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "percona-toolkit"], check=True,
                   env=env, timeout=600)
    return shutil.which("pt-table-checksum") or "/usr/bin/pt-table-checksum"


def server_pid(inv, endpoint) -> int | None:
    """The mariadbd/mysqld process serving `endpoint` on this machine: the one whose working directory is the
    server's datadir (the server chdir()s there). None when it runs elsewhere or cannot be seen."""
    rows = db.execute(endpoint, inv, "SELECT @@datadir AS d")
    datadir = os.path.realpath(str(rows[0]["d"]).rstrip("/"))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() not in ("mariadbd", "mysqld"):
                continue
            if os.path.realpath(os.readlink(f"/proc/{pid}/cwd")).rstrip("/") == datadir:
                return int(pid)
        except OSError:
            continue
    return None


def cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def quiet(inv) -> None:
    """Start each tool on quiet servers: the replica has applied everything (pt-table-checksum's own checksum
    writes included) and background work (purge, flushing) had a moment."""
    seed_data.replica_service.catch_up(inv, timeout=120)
    time.sleep(2)


def measure(pids, func):
    before = [cpu_seconds(p) for p in pids]
    t0 = time.perf_counter()
    out = func()
    wall = time.perf_counter() - t0
    after = [cpu_seconds(p) for p in pids]
    cpu = [None if b is None or a is None else a - b for b, a in zip(before, after, strict=True)]
    return wall, cpu, out


def setup_pt(inv, cnf: Path) -> None:
    """pt-table-checksum's own requirements: a DSN table naming the replica, a fresh checksums table."""
    src, rep = inv.source, inv.replica
    setup = ["CREATE DATABASE IF NOT EXISTS percona",
             "CREATE TABLE IF NOT EXISTS percona.dsns (id INT AUTO_INCREMENT PRIMARY KEY, parent_id INT NULL, "
             "dsn VARCHAR(255) NOT NULL)",
             "DELETE FROM percona.dsns", "DROP TABLE IF EXISTS percona.checksums"]
    for statement in setup:
        db.execute(src, inv, statement)
    db.execute(src, inv, "INSERT INTO percona.dsns (dsn) VALUES (%s)", (f"h={rep.address},P={rep.port},F={cnf}",))


def run_pt(pt: str, inv, cnf: Path) -> dict:
    src = inv.source
    cmd = [pt, f"h={src.address},P={src.port},F={cnf}", "--databases", SCHEMA, "--no-version-check",
           "--recursion-method", f"dsn=h={src.address},P={src.port},F={cnf},D=percona,t=dsns",
           "--replicate", "percona.checksums", "--no-check-binlog-format"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    tables = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 9 and parts[-1].startswith(SCHEMA + "."):
            tables[parts[-1]] = {"errors": int(parts[1]), "diffs": int(parts[2]), "rows": int(parts[3]),
                                 "chunks": int(parts[5]), "skipped": int(parts[6])}
    return {"exit": r.returncode, "tables": tables, "stderr": r.stderr.strip()[-800:]}


def run_drpoc(inventory_path: str, workers: int) -> dict:
    r = subprocess.run([str(Path(sys.executable).parent / "drpoc"), "parity", "--inventory", inventory_path,
                        "--tables", SCHEMA, "--json", "--quiet", "--no-checkpoint", "--workers", str(workers)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    out = json.loads(r.stdout) if r.stdout.strip() else {"tables": [], "error": r.stderr.strip()}
    out["exit"] = r.returncode
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows seeded (default %(default)s; at most 5M)")
    ap.add_argument("--inventory", default=os.environ.get("DRPOC_INVENTORY") or "/var/lib/drpoc-lab/inventory.yaml",
                    help="inventory of the source/replica pair (default: $DRPOC_INVENTORY, then the lab's)")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                    help="drpoc parity's workers (default: this machine's CPUs, at most 4 — the lab's servers share "
                         "them)")
    ap.add_argument("--reuse", action="store_true", help="keep drpoc_seed if it is already seeded")
    args = ap.parse_args()
    rows = min(max(args.rows, 4), 5_000_000)
    pt = ensure_pt_table_checksum()
    inv = load_inventory(args.inventory)
    if not args.reuse:
        seed_data.seed(inv, rows, say=lambda m: print(m, file=sys.stderr))
    for kind, table, cols, key, column in DIVERGENCES:
        seed_data.inject_divergence(inv, kind, SCHEMA, table, cols, key, column)
    pids = [server_pid(inv, inv.source), server_pid(inv, inv.replica)]
    version = subprocess.run([pt, "--version"], capture_output=True, text=True, timeout=30).stdout.split()
    pt_label = "pt-table-checksum " + (version[-1] if version else "?")
    password = resolve_secret(inv.source.password_ref, None, where="mysql password")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cnf = Path(tmp) / "pt.cnf"
            cnf.touch(mode=0o600)
            cnf.write_text(f"[client]\nuser={inv.source.user}\npassword={password}\n")
            setup_pt(inv, cnf)
            quiet(inv)
            pt_wall, pt_cpu, pt_out = measure(pids, lambda: run_pt(pt, inv, cnf))
        quiet(inv)
        dp_wall, dp_cpu, dp_out = measure(pids, lambda: run_drpoc(args.inventory, args.workers))
    finally:
        for _, table, cols, key, _ in DIVERGENCES:
            seed_data.repair_rows(inv, SCHEMA, table, cols, [key])
        db.execute(inv.source, inv, "DROP DATABASE IF EXISTS percona")

    def cpu(x):
        return "n/a" if x is None else f"{x:.2f}"

    ours = {t["table"]: t for t in dp_out.get("tables", [])}
    print(f"parity of {rows:,} rows ({SCHEMA}), 3 divergences injected on the replica; source pid {pids[0]}, "
          f"replica pid {pids[1]}")
    print(f"{'':<26} {'wall s':>8} {'source CPU s':>13} {'replica CPU s':>14}  exit")
    print(f"{pt_label:<26} {pt_wall:8.2f} {cpu(pt_cpu[0]):>13} {cpu(pt_cpu[1]):>14}  {pt_out['exit']}")
    label = f"drpoc parity ({args.workers} workers)"
    print(f"{label:<26} {dp_wall:8.2f} {cpu(dp_cpu[0]):>13} {cpu(dp_cpu[1]):>14}  {dp_out['exit']}")
    print(f"wall time ratio drpoc/pt: {dp_wall / pt_wall:.2f}   target <= 0.50")
    print(f"{'table':<26} {'pt: diff chunks':>16} {'drpoc: status':>14}  drpoc: keys")
    same = True
    for table in sorted(set(pt_out["tables"]) | set(ours)):
        p, d = pt_out["tables"].get(table, {}), ours.get(table, {})
        pt_differs = p.get("diffs", 0) > 0
        d_differs = d.get("status") == "differs"
        if table in pt_out["tables"] and not p.get("skipped") and not p.get("errors"):
            same &= pt_differs == d_differs  # a table pt-table-checksum skipped has no verdict to compare
        keys = "; ".join(f"{k} {', '.join(d[k])}" for k in ("missing", "extra", "changed") if d.get(k))
        shown = (f"{p['diffs']}" + (" (skipped)" if p.get("skipped") or p.get("errors") else "")) if p else \
            "skipped"
        print(f"{table:<26} {shown:>16} {d.get('status', 'absent'):>14}  {keys}")
    print(f"verdicts identical on the tables both checked: {'yes' if same else 'NO'}")
    if pt_out["exit"] not in (0, 16) and pt_out["stderr"]:
        print("pt-table-checksum said: " + pt_out["stderr"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
