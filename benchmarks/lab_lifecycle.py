"""Lab lifecycle and the seed's timings on this machine.

    sudo .venv/bin/python benchmarks/lab_lifecycle.py [--rounds 3] [--keep-data]

Measures: cold up (no data directories: `mariadb-install-db` runs), warm up (data kept), down, IKE establish time
(on-prem `ipsec up` to CHILD_SA INSTALLED on both gateways), the replica's detection time after `ipsec down` on AWS
(IO thread -> Connecting) and catch-up time (tunnel back -> a row written during the outage visible on the replica),
at the lab's default replica knobs. Targets (issue 2): cold up <= 20 s, warm up <= 3 s, down <= 3 s on 2 cores.
Every loop is bounded; the lab is left up at the end (`drpoc lab down` removes it). Destroys the lab's data
directories for the cold measurement unless --keep-data.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

import pymysql

from drpoc_chaos.lab.lifecycle import Lab
from drpoc_chaos.lab.topology import DATABASES, MYSQL_PORT_BASE, Paths

SOURCE_PORT, REPLICA_PORT = MYSQL_PORT_BASE, MYSQL_PORT_BASE + 1  # the lab's, as `drpoc lab up` publishes them


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def on(lab: Lab, host: str, *cmd: str) -> str:
    return lab.exec_in(host, list(cmd), check=False).stdout


def db(port: int):
    pw = (Paths().secrets / "mysql_password").read_text().strip()
    return pymysql.connect(host="127.0.0.1", port=port, user="drpoc", password=pw, database="testdb",
                           autocommit=True, connect_timeout=5)


def io_state() -> str:
    with db(REPLICA_PORT) as c, c.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW REPLICA STATUS")
        return cur.fetchone()["Slave_IO_Running"]


def wait(pred, timeout: float, step: float = 0.02) -> float:
    t0 = time.perf_counter()
    while not pred():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("bounded wait expired")
        time.sleep(step)
    return time.perf_counter() - t0


def both_installed(lab: Lab) -> bool:
    return all("INSTALLED" in on(lab, h, "ipsec", "statusall") for h in ("aws-vpn", "onprem-vpn"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep-data", action="store_true", help="skip the cold measurement (keeps data directories)")
    args = ap.parse_args()
    lab = Lab()
    res: dict[str, list[float]] = {"cold up": [], "warm up": [], "down": [], "IKE establish": [],
                                   "detection (IO -> Connecting)": [], "catch-up (tunnel up -> row visible)": []}
    for _ in range(args.rounds if not args.keep_data else 0):
        lab.down(quiet=True)
        for s in ("aws", "onprem"):
            shutil.rmtree(Paths().host_dir(DATABASES[s]["host"]), ignore_errors=True)
        res["cold up"].append(timed(lambda: lab.up()))
    for _ in range(args.rounds):
        res["down"].append(timed(lambda: lab.down(quiet=True)))
        res["warm up"].append(timed(lambda: lab.up()))
    for _ in range(args.rounds):
        for h in ("aws-vpn", "onprem-vpn"):
            on(lab, h, "ipsec", "down", "onprem-aws")
        t0 = time.perf_counter()
        on(lab, "onprem-vpn", "ipsec", "up", "onprem-aws")
        wait(lambda: both_installed(lab), 30)
        res["IKE establish"].append(time.perf_counter() - t0)
        wait(lambda: io_state() == "Yes", 30)
        on(lab, "aws-vpn", "ipsec", "down", "onprem-aws")
        res["detection (IO -> Connecting)"].append(wait(lambda: io_state() != "Yes", 60, 0.05))
        with db(SOURCE_PORT) as c, c.cursor() as cur:
            cur.execute("INSERT INTO ping (msg) VALUES ('benchmark-during-outage')")
            row = cur.lastrowid
        for h, verb in (("onprem-vpn", "down"), ("onprem-vpn", "up"), ("aws-vpn", "up")):
            on(lab, h, "ipsec", verb, "onprem-aws")
        t_up = time.perf_counter()

        def visible(row: int | None = row) -> bool:  # bound now, not at call time (B023)
            with db(REPLICA_PORT) as c, c.cursor() as cur:
                cur.execute("SELECT 1 FROM ping WHERE id=%s", (row,))
                return cur.fetchone() is not None

        wait(visible, 60)
        res["catch-up (tunnel up -> row visible)"].append(time.perf_counter() - t_up)
    knobs = lab.status()["knobs"]
    print(f"lab lifecycle on {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, "
          f"{args.rounds} round(s); replica knobs {knobs}")
    print(f"{'measure':<40} {'median':>8} {'min':>8} {'max':>8}  target")
    targets = {"cold up": 20, "warm up": 3, "down": 3}
    for name, values in res.items():
        if not values:
            continue
        t = targets.get(name)
        verdict = "" if t is None else (f"<= {t} s " + ("met" if statistics.median(values) <= t else "MISSED"))
        print(f"{name:<40} {statistics.median(values):8.2f} {min(values):8.2f} {max(values):8.2f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
