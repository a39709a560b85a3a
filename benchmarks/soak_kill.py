"""Soak: drills killed at random moments with random signals; the estate and the evidence must come through.

    sudo .venv/bin/python benchmarks/soak_kill.py [--drills 12] [--seed N] [--max-outage 15]

Against the lab (`drpoc lab up` first). Each drill (`experiments/vpn_outage.yaml`, a short outage) is sent SIGINT,
SIGTERM or SIGKILL — to its whole process group, as a dying terminal or an OOM killer would — at a random moment
between its start and its natural end. After each one:

- the tunnel is back on both gateways within `max_outage_seconds` + 15 s of the drill's start (stricter than "of
  the fault", which comes later);
- once back, the tunnel is not bounced: the IKE_SA stays the same past the dead-man's switch's deadline and the
  gateway's charon log shows no new `terminate` (the switch checks before acting);
- zero acknowledged writes lost: every drill row the source committed reaches the replica;
- `drpoc recover` (what an operator runs after a killed drill) archives the dead drill; at the end every intent in
  the archive has exactly one outcome and `drpoc verify` is clean.

The test suite runs a few (tests/lab/test_soak.py); the figures of the issue come from a longer run of this file.
Bounded: each drill <= 120 s, each wait <= max_outage + 30 s.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pymysql

from drpoc_chaos.lab.topology import MYSQL_PORT_BASE

SOURCE_PORT, REPLICA_PORT = MYSQL_PORT_BASE, MYSQL_PORT_BASE + 1  # the lab's, as `drpoc lab up` publishes them

REPO = Path(__file__).resolve().parents[1]
DRPOC = [sys.executable, "-m", "drpoc_chaos.cli"]
CHAOS = [str(Path(sys.executable).parent / "chaos"), "--no-version-check", "--no-log-file"]
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}


@dataclass
class Outcome:
    n: int
    signal: str
    kill_after_s: float
    step_at_kill: str | None
    exited: int | None
    tunnel_back_after_s: float | None  # from the drill's start
    bounced: bool
    rows_missing: int
    archived_status: str | None


def on(host: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(DRPOC + ["lab", "exec", host, "--", *cmd], capture_output=True, text=True, timeout=60)


def tunnel_ok() -> bool:
    for host in ("aws-vpn", "onprem-vpn"):
        out = on(host, "ipsec", "statusall", "onprem-aws").stdout
        if not (re.search(r"onprem-aws\[\d+\]: ESTABLISHED", out) and re.search(r"onprem-aws\{\d+\}:\s+INSTALLED",
                                                                                  out)):
            return False
    return True


def ike_ids() -> tuple[set[str], int]:
    out = on("aws-vpn", "ipsec", "statusall", "onprem-aws").stdout
    log = on("aws-vpn", "cat", "/run/charon.log").stdout
    return set(re.findall(r"onprem-aws\[(\d+)\]: ESTABLISHED", out)), log.count("received stroke: terminate")


def drill_rows(port: int) -> set[tuple[int, str]]:
    from drpoc_chaos.lab.topology import Paths
    password = (Paths().secrets / "mysql_password").read_text().strip()
    with pymysql.connect(host="127.0.0.1", port=port, user="drpoc", password=password, database="testdb",
                         connect_timeout=5) as c, c.cursor() as cur:
        cur.execute("SELECT id, msg FROM ping WHERE msg LIKE 'drpoc:%%'")
        return set(cur.fetchall())


def rows_missing(timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        missing = drill_rows(SOURCE_PORT) - drill_rows(REPLICA_PORT)
        if not missing or time.monotonic() > deadline:
            return len(missing)
        time.sleep(0.5)


def ledger_journals(archive: Path) -> list[str]:
    """The journal files the ledger lists, in order (intents left out)."""
    try:
        lines = (archive / "ledger.jsonl").read_text().splitlines()
    except OSError:
        return []
    entries = [json.loads(line) for line in lines if line.strip()]
    return [e["file"] for e in entries if e.get("kind", "journal") == "journal"]


def current_step(archive: Path) -> str | None:
    for f in (archive / ".inflight").glob("*.json"):
        try:
            return json.loads(f.read_text()).get("step")
        except (OSError, ValueError):
            pass
    return None


def one_drill(n: int, rng: random.Random, archive: Path, work: Path, max_outage: float,
              say=print) -> Outcome:
    sig_name = rng.choice(sorted(SIGNALS))
    kill_after = round(rng.uniform(0.5, 10.0), 2)  # the drill itself lasts ~10 s
    cmd = CHAOS + ["run", "--journal-path", str(work / f"j{n}.json"), "--var", "outage_seconds:float=2",
                   "--var", f"max_outage_seconds:float={max_outage}", str(REPO / "experiments" / "vpn_outage.yaml")]
    env = dict(os.environ, DRPOC_ARCHIVE_DIR=str(archive))
    before = len(ledger_journals(archive))
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=work,
                            start_new_session=True)
    step = None
    while time.monotonic() - started < kill_after and proc.poll() is None:
        step = current_step(archive) or step
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, SIGNALS[sig_name])
    try:
        exited = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        exited = proc.wait(timeout=10)
    back = None
    deadline = started + max_outage + 30
    while time.monotonic() < deadline:
        if tunnel_ok():
            back = time.monotonic() - started
            break
        time.sleep(0.25)
    ids, terms = ike_ids()
    # past the switch's deadline (armed ~1 s after the start) and a few seconds more
    time.sleep(max(3.0, started + max_outage + 4 - time.monotonic()))
    ids_after, terms_after = ike_ids()
    bounced = ids_after != ids or terms_after != terms
    r = subprocess.run(DRPOC + ["recover", "--archive-dir", str(archive)], capture_output=True, text=True,
                       timeout=180)
    missing = rows_missing()
    new_entries = ledger_journals(archive)[before:]
    status = ",".join(str((json.loads((archive / e).read_text()).get("drpoc") or {}).get("verdict", {})
                          .get("status")) for e in new_entries) or None
    out = Outcome(n, sig_name, kill_after, step, exited, round(back, 2) if back is not None else None, bounced,
                  missing, status)
    say(f"drill {n}: {sig_name} after {kill_after:.2f}s (step {step}), exit {exited}, tunnel back "
        f"{out.tunnel_back_after_s}s after start, bounced={bounced}, rows missing {missing}; recover rc "
        f"{r.returncode}")
    return out


def account(archive: Path) -> dict:
    """Every intent has exactly one outcome journal; and verify is clean."""
    intents, outcomes = set(), Counter()
    for p in archive.glob("*.json"):
        data = json.loads(p.read_text())
        if p.name.endswith(".intent.json"):
            intents.add(data["run_id"])
        else:
            outcomes[(data.get("drpoc") or {}).get("run_id")] += 1
    verify = subprocess.run(DRPOC + ["verify", str(archive)], capture_output=True, text=True, timeout=120)
    statuses = Counter()
    for p in archive.glob("*.json"):
        if not p.name.endswith(".intent.json"):
            statuses[(json.loads(p.read_text()).get("drpoc") or {}).get("verdict", {}).get("status")] += 1
    return {"intents": len(intents), "intents_without_outcome": sorted(i for i in intents if outcomes[i] == 0),
            "intents_with_several_outcomes": sorted(i for i in intents if outcomes[i] > 1),
            "statuses": dict(statuses), "verify_rc": verify.returncode, "verify": verify.stdout[-2000:]}


def run_soak(drills: int, seed: int, max_outage: float, archive: Path, work: Path, say=print) -> tuple[list[Outcome],
                                                                                                      dict]:
    rng = random.Random(seed)
    say(f"soak: {drills} drills, seed {seed}, max_outage_seconds {max_outage:g}")
    results = [one_drill(i + 1, rng, archive, work, max_outage, say) for i in range(min(drills, 50))]
    return results, account(archive)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drills", type=int, default=12)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--max-outage", type=float, default=15.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive, work = Path(tmp) / "archive", Path(tmp) / "work"
        work.mkdir()
        results, acc = run_soak(args.drills, args.seed, args.max_outage, archive, work)
    backs = sorted(r.tunnel_back_after_s for r in results if r.tunnel_back_after_s is not None)
    print(json.dumps([asdict(r) for r in results], indent=1))
    print(f"signals: {dict(Counter(r.signal for r in results))}")
    print(f"tunnel back (s after start): min {backs[0] if backs else None}, max {backs[-1] if backs else None}, "
          f"bound {args.max_outage + 15:g}; never back: {sum(r.tunnel_back_after_s is None for r in results)}")
    print(f"bounces after recovery: {sum(r.bounced for r in results)}; rows lost: "
          f"{sum(r.rows_missing for r in results)}")
    print(f"archive: {acc['intents']} intents, without outcome {len(acc['intents_without_outcome'])}, with "
          f"several {len(acc['intents_with_several_outcomes'])}; outcomes {acc['statuses']}; verify rc "
          f"{acc['verify_rc']}")
    ok = (all(r.tunnel_back_after_s is not None and r.tunnel_back_after_s <= args.max_outage + 15 for r in results)
          and not any(r.bounced or r.rows_missing for r in results) and not acc["intents_without_outcome"]
          and not acc["intents_with_several_outcomes"] and acc["verify_rc"] == 0)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
