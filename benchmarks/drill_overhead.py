"""The seed drill's wall time against its intrinsic waits.

    sudo .venv/bin/python benchmarks/drill_overhead.py [--runs 3]

Runs `chaos run experiments/vpn_outage.yaml` against the lab (`drpoc lab up` first) and reads each journal. The
intrinsic part is what the drill cannot go faster than: the outage itself (fault -> tunnel back on both gateways:
detection, the connect error, the held outage), the replica's reconnect and its catch-up. Everything else —
steady-state checks before and after, the lock, the dead-man's switch, SSH/MySQL connections, the before/after
writes, archiving — is overhead. Target (issue 4): wall time <= intrinsic + 10 %. Bounded: each run <= 300 s.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    chaos = str(Path(sys.executable).parent / "chaos")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(min(args.runs, 10)):
            journal = Path(tmp) / f"j{i}.json"
            env = dict(os.environ, DRPOC_ARCHIVE_DIR=str(Path(tmp) / "archive"))
            r = subprocess.run([chaos, "--no-version-check", "--no-log-file", "run", "--journal-path", str(journal),
                                str(REPO / "experiments" / "vpn_outage.yaml")], capture_output=True, text=True,
                               timeout=300, env=env, cwd=tmp)
            j = json.loads(journal.read_text())
            m = j["drpoc"]["metrics"]
            intrinsic = m["outage_seconds"] + m["replica_reconnect_seconds"] + m["catch_up_seconds"]
            rows.append((j["duration"], intrinsic, m, r.returncode))
    print(f"{'run':>3} {'wall s':>8} {'intrinsic s':>12} {'overhead s':>11} {'overhead %':>11}   "
          f"(detection / outage / reconnect / catch-up s)")
    for i, (wall, intrinsic, m, rc) in enumerate(rows):
        print(f"{i + 1:>3} {wall:8.2f} {intrinsic:12.2f} {wall - intrinsic:11.2f} {100 * (wall / intrinsic - 1):10.1f}%"
              f"   ({m['detection_seconds']} / {m['outage_seconds']} / {m['replica_reconnect_seconds']} / "
              f"{m['catch_up_seconds']}){'' if rc == 0 else '  DRILL FAILED'}")
    wall = sum(r[0] for r in rows) / len(rows)
    intr = sum(r[1] for r in rows) / len(rows)
    print(f"mean: wall {wall:.2f} s, intrinsic {intr:.2f} s, overhead {100 * (wall / intr - 1):.1f}%   target <= 10%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
