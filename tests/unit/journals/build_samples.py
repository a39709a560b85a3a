"""Regenerate the synthetic sample journals in this folder (run from the repo root):

    .venv/bin/python tests/unit/journals/build_samples.py

They follow docs/JOURNAL.md and are shaped after the lab's recorded outputs (tests/fixtures/*-lab/). Journals from
real lab drills can be dropped next to them; the tests name the files they use.
"""
from __future__ import annotations

import copy
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from drpoc_chaos.evidence.samples import make_journal  # noqa: E402


def dump(name: str, obj) -> bytes:
    data = (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    (HERE / name).write_bytes(data)
    return data


def main() -> None:
    t = lambda d, h=17: datetime(2026, 11, d, h, 0, 0, tzinfo=timezone.utc)  # noqa: E731
    passed = make_journal("pass", seed=11, started=t(1), run_id="2b0c1a2f9e8d4c7ba1f0e2d3c4b5a697")
    data = dump("drpoc1_vpn_outage_passed.json", passed)
    dump("drpoc1_vpn_outage_deviated_lost_writes.json",
         make_journal("deviated", seed=12, started=t(8), run_id="7f3e9d1c5b2a48e6a0c1d2e3f4a5b6c7"))
    dump("drpoc1_vpn_outage_precondition_failed.json",
         make_journal("precondition", seed=13, started=t(15), run_id="c0ffee00aa11bb22cc33dd44ee55ff66"))
    dump("drpoc1_vpn_outage_interrupted.json",
         make_journal("interrupted", seed=14, started=t(22), run_id="deadbeef12345678deadbeef12345678"))
    dump("chaostoolkit_generic_no_drpoc.json", make_journal("generic", seed=15, started=t(23, 9)))

    # Corrupt: a stretch in the middle overwritten, as a bad copy or a disk error would.
    mid = len(data) // 2
    (HERE / "corrupt.json").write_bytes(data[:mid] + b"\x00\x00#garbage}{]" + data[mid + 12:])
    # Truncated: the first 55% of a journal, as when the controller died while writing.
    (HERE / "truncated.json").write_bytes(data[: int(len(data) * 0.55)])

    future = copy.deepcopy(passed)
    future["drpoc"]["schema"] = "drpoc.journal/2"
    future["drpoc"]["run_id"] = "99999999aaaabbbbccccddddeeeeffff"
    dump("drpoc2_unknown_schema.json", future)

    # An old or hand-made journal: few keys, odd types. The review must show n/a, not crash.
    sparse = {
        "chaoslib-version": "1.42.0", "node": "old-runner", "start": "2026-10-01T08:00:00", "status": "completed",
        "deviated": False, "experiment": {"title": "VPN outage (early prototype)"},
        "steady_states": {"before": {"steady_state_met": True, "probes": []}, "after": None},
        "run": [], "rollbacks": "not a list",
        "drpoc": {"schema": "drpoc.journal/1", "run_id": "0123456789abcdef0123456789abcdef",
                  "scenario": "vpn_outage", "started": "2026-10-01T08:00:00.000000Z",
                  "metrics": {"detection_seconds": "4.5", "rto_seconds": None, "catch_up_seconds": "fast"},
                  "timeline": {"samples": [{"t": 0, "io": "Yes"}, {"io": "No"}, "junk", {"t": "1.5", "io": None}]},
                  "events": [{"name": "fault_injected", "t": 0.5}, {"t": 3}, None],
                  "verdict": {"passed": True}, "scope": ["not", "a", "dict"]},
    }
    dump("drpoc1_missing_keys.json", sparse)

    # Secrets where they should never be: the redaction tests archive this one.
    leaky = make_journal("pass", seed=16, started=t(29), run_id="5ec7e75ec7e75ec7e75ec7e75ec7e75e")
    leaky["experiment"]["configuration"]["mysql_password"] = "S3cr3t-Replica-Pw!"
    leaky["experiment"]["configuration"]["psk_ref"] = {"file": "/etc/ipsec.d/onprem-aws.psk"}
    leaky["experiment"]["secrets"]["vpn"] = {"psk": "0sVeryLongPreSharedKey==", "token": {"env": "VPN_TOKEN"}}
    leaky["run"][1]["output"]["stdout"] += "\nmysql -urepl -pS3cr3t-Replica-Pw! -h 10.20.11.123 -e 'SELECT 1'"
    dump("with_secrets.json", leaky)


if __name__ == "__main__":
    main()
