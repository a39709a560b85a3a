"""Synthetic journals shaped like real drills (docs/JOURNAL.md), for tests, the report screenshot and benchmarks.

They follow the seed runbook's vpn_outage drill: the AWS gateway's tunnel goes down, the replica's IO thread goes
``Connecting`` with errno 2003, the writer keeps inserting on the source, recovery brings the tunnel up in the
stable order, the IO thread reconnects and the replica catches up. ``make_journal(kind=...)`` gives the variants the
review must handle: ``pass``, ``deviated`` (lost writes, objectives missed), ``precondition`` (steady state not met
before), ``interrupted`` (SIGINT during the outage, dead-man's switch fired), ``generic`` (no ``drpoc`` key).
Nothing here touches a host; it is deterministic for a given ``seed``.
"""
from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["make_journal", "KINDS"]

KINDS = ("pass", "deviated", "precondition", "interrupted", "generic")
IO_ERROR = ("error reconnecting to master 'repl@10.20.11.123:3306' - retry-time: 2  maximum-retries: 100000  "
            "message: Can't connect to server on '10.20.11.123' (110 \"Connection timed out\")")


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _experiment(title: str) -> dict[str, Any]:
    probe: dict[str, Any] = {"type": "probe",
                             "provider": {"type": "python", "module": "drpoc_chaos.replication.probes"}}
    return {
        "version": "1.0.0",
        "title": title,
        "description": "Take the site-to-site VPN down from the AWS side while the source keeps taking writes; "
                       "replication must lose nothing and recover within the objectives.",
        "tags": ["dr", "vpn", "mysql-replication"],
        "configuration": {"inventory": {"type": "env", "key": "DRPOC_INVENTORY"}, "scenario": "vpn_outage"},
        "secrets": {"mysql": {"password": {"type": "env", "key": "DRPOC_MYSQL_PASSWORD"}}},
        "controls": [{"name": "drpoc", "provider": {"type": "python", "module": "drpoc_chaos.drill.control"}}],
        "steady-state-hypothesis": {
            "title": "tunnel established and replica running",
            "probes": [
                {**probe, "name": "tunnel-established", "tolerance": True,
                 "provider": {"type": "python", "module": "drpoc_chaos.vpn.probes", "func": "tunnel_established"}},
                {**probe, "name": "replica-running", "tolerance": True,
                 "provider": {**probe["provider"], "func": "replica_running"}},
                {**probe, "name": "replica-lag-below", "tolerance": True,
                 "provider": {**probe["provider"], "func": "lag_below", "arguments": {"seconds": 5}}},
            ],
        },
        "method": [
            {"type": "action", "name": "start-writer", "background": True,
             "provider": {"type": "python", "module": "drpoc_chaos.replication.actions", "func": "start_writer"}},
            {"type": "action", "name": "ipsec-down-aws",
             "provider": {"type": "python", "module": "drpoc_chaos.vpn.actions", "func": "tunnel_down",
                          "arguments": {"site": "aws"}}},
            {"type": "action", "name": "recover-vpn-stable-order",
             "provider": {"type": "python", "module": "drpoc_chaos.vpn.actions", "func": "recover_stable_order"}},
        ],
        "rollbacks": [
            {"type": "action", "name": "ensure-tunnel-up",
             "provider": {"type": "python", "module": "drpoc_chaos.vpn.actions", "func": "ensure_up"}},
            {"type": "action", "name": "ensure-replica-running",
             "provider": {"type": "python", "module": "drpoc_chaos.replication.actions", "func": "ensure_running"}},
        ],
    }


def _run_record(name: str, start: datetime, seconds: float, output: Any, status: str = "succeeded",
                kind: str = "action") -> dict[str, Any]:
    rec = {"activity": {"type": kind, "name": name}, "output": output, "status": status,
           "start": start.isoformat(), "end": (start + timedelta(seconds=seconds)).isoformat(),
           "duration": round(seconds, 3)}
    if status == "failed":
        rec["exception"] = ["Traceback (most recent call last):\n", f"chaoslib.exceptions.ActivityFailed: {output}\n"]
    return rec


def _steady(start: datetime, met: bool, io: str = "Yes") -> dict[str, Any]:
    probes = [
        {**_run_record("tunnel-established", start, 0.21, True, kind="probe"), "tolerance_met": True},
        {**_run_record("replica-running", start + timedelta(seconds=0.2), 0.05,
                       {"io": io, "sql": "Yes"}, kind="probe"), "tolerance_met": io == "Yes"},
        {**_run_record("replica-lag-below", start + timedelta(seconds=0.3), 0.04, 0 if io == "Yes" else None,
                       kind="probe"), "tolerance_met": io == "Yes"},
    ]
    return {"steady_state_met": met, "probes": probes}


def make_journal(kind: str = "pass", *, started: datetime | None = None, seed: int = 1, samples: int = 60,
                 interval: float = 0.5, scenario: str = "vpn_outage", run_id: str | None = None,
                 node: str = "drill-runner-1") -> dict[str, Any]:
    """A Chaos Toolkit journal with a ``drpoc.journal/1`` key (except ``kind="generic"``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    rnd = random.Random(seed)
    started = started or datetime(2026, 11, 29, 17, 0, 0, tzinfo=timezone.utc)
    run_id = run_id or uuid.UUID(int=rnd.getrandbits(128), version=4).hex
    title = "VPN outage: replication survives and recovers within objectives"
    duration_total = samples * interval
    # Event times (seconds since start), scaled to the timeline length.
    t_fault = round(duration_total * 0.12 + rnd.uniform(-0.3, 0.3), 2)
    detect = round(rnd.uniform(3.0, 6.0), 2)
    outage = round(duration_total * 0.25 + rnd.uniform(-1.0, 1.0), 2)
    tunnel_rec = round(rnd.uniform(0.3, 1.2), 2)
    reconnect = round(rnd.uniform(0.8, 2.5) if kind != "deviated" else duration_total * 0.3, 2)
    catch_up = round(rnd.uniform(0.8, 3.0), 2)
    t_detect = t_fault + detect
    t_rec = t_fault + outage
    t_tunnel = t_rec + tunnel_rec
    t_io = t_tunnel + reconnect
    t_caught = t_io + catch_up
    cut = min(t_detect + 2.0, t_rec - 0.5) if kind == "interrupted" else None  # SIGINT during the outage
    n = samples if kind != "precondition" else max(4, samples // 10)
    if cut is not None:
        n = int(cut / interval)
    rate = 2.0  # writer: rows per second on the source
    lost_ids = [41, 42, 43] if kind == "deviated" else []
    base_rows = 5
    tl = []
    sbs: int | None
    for i in range(n):
        t = round(i * interval, 3)
        src = base_rows + int(t * rate) if kind != "precondition" else base_rows
        if kind == "precondition":
            s = {"t": t, "aws_tunnel": "up", "onprem_tunnel": "up", "io": "No", "sql": "Yes", "last_io_errno": 1045,
                 "last_io_error": "Access denied for user 'repl'@'192.168.64.10' (using password: YES)",
                 "seconds_behind": None, "heartbeat_lag": round(30.0 + t, 3), "source_rows": src,
                 "replica_rows": base_rows - 2}
            tl.append(s)
            continue
        aws = "up" if t < t_fault else ("down" if t < t_rec + 0.2 else ("connecting" if t < t_tunnel else "up"))
        if t < t_fault + 2.0:
            onp = "up"
        elif t < t_rec:
            onp = "connecting"  # DPD noticed the peer is gone; IKE_SA_INIT retransmits
        elif t < t_rec + 0.3:
            onp = "down"  # ipsec down on-prem, the stable recovery order
        elif t < t_tunnel:
            onp = "connecting"
        else:
            onp = "up"
        if t < t_detect:
            io, errno, err = "Yes", 0, ""
        elif t < t_io:
            io, errno, err = "Connecting", 2003, IO_ERROR
        else:
            io, errno, err = "Yes", 0, ""
        noise = rnd.uniform(0.004, 0.02)
        if t < t_fault:
            lag, rep, sbs = noise, src, 0
        elif t < t_io:
            lag = round(t - t_fault + noise, 3)
            rep = base_rows + int(t_fault * rate)
            sbs = None if io == "Connecting" else int(t - t_fault)
        elif t < t_caught:
            frac = (t - t_io) / max(catch_up, 0.01)
            rep_at_fault = base_rows + int(t_fault * rate)
            rep = int(rep_at_fault + (src - rep_at_fault) * frac)
            lag = round((t_io - t_fault) * (1 - frac) + noise, 3)
            sbs = int((t_io - t_fault) * (1 - frac))
        else:
            lag, rep, sbs = noise, src, 0
        if lost_ids and t >= t_caught:
            rep = src - len(lost_ids)
        tl.append({"t": t, "aws_tunnel": aws, "onprem_tunnel": onp, "io": io, "sql": "Yes", "last_io_errno": errno,
                   "last_io_error": err, "seconds_behind": sbs, "heartbeat_lag": round(lag, 3),
                   "source_rows": src, "replica_rows": rep})

    end_t = round(cut, 2) if cut is not None else n * interval
    ended = started + timedelta(seconds=end_t + 1.5)

    def at(t: float) -> str:
        return _iso(started + timedelta(seconds=t))

    events: list[dict[str, Any]] = [{"name": "drill_started", "t": 0.0, "at": at(0.0)}]
    if kind != "precondition":
        events.append({"name": "deadman_armed", "t": round(t_fault - 0.1, 2), "at": at(t_fault - 0.1)})
        for name, t in (("fault_injected", t_fault), ("outage_detected", t_detect), ("recovery_started", t_rec),
                        ("tunnel_up", t_tunnel), ("io_reconnected", t_io), ("caught_up", t_caught)):
            if cut is not None and t > cut:
                break
            events.append({"name": name, "t": round(t, 2), "at": at(t)})
        if kind != "interrupted":  # interrupted: the dead-man's switch fired (safety.deadman.fired)
            events.append({"name": "deadman_disarmed", "t": round(t_tunnel + 0.1, 2), "at": at(t_tunnel + 0.1)})
    events.append({"name": "drill_ended", "t": round(end_t, 2), "at": at(end_t)})
    events.sort(key=lambda e: e["t"])

    attempted = int(end_t * rate) if kind != "precondition" else 0
    observed = attempted - len(lost_ids)
    during = int(outage * rate)
    rto = round(t_caught - t_fault, 2)
    objectives = {"rpo_seconds": 0, "rto_seconds": 60, "max_lost_writes": 0, "max_detection_seconds": 15,
                  "max_catch_up_seconds": 30}
    metrics: dict[str, Any] = {
        "detection_seconds": detect, "outage_seconds": outage, "tunnel_recovery_seconds": tunnel_rec,
        "replica_reconnect_seconds": reconnect, "catch_up_seconds": catch_up, "rto_seconds": rto,
        "writes_during_outage": {"attempted": during, "acknowledged": during, "observed": during - len(lost_ids)},
        "lost_writes": len(lost_ids), "unexpected_writes": 0, "duplicated_writes": 0,
        "replication_latency_seconds": {"p50": 0.02, "p95": round(outage * 0.9, 2), "p99": round(outage, 2),
                                        "max": round(t_caught - t_fault, 2), "count": attempted},
        "rpo_exposure": {"max_writes": during, "max_seconds": round(t_io - t_fault, 2)},
        "apply_rate_per_second": round(rnd.uniform(700, 1100), 1),
        "rpo_seconds": 0.0 if not lost_ids else round(len(lost_ids) / rate, 2),
    }
    if kind == "precondition":
        metrics = {k: None for k in metrics}
    if kind == "interrupted":
        for k in ("replica_reconnect_seconds", "catch_up_seconds", "rto_seconds", "rpo_seconds"):
            metrics[k] = None
        metrics["tunnel_recovery_seconds"] = None if cut is not None and t_tunnel > cut else tunnel_rec
    results = []
    if kind not in ("precondition", "interrupted"):
        for name, achieved in (("rpo_seconds", metrics["rpo_seconds"]), ("rto_seconds", rto),
                               ("max_lost_writes", len(lost_ids)), ("max_detection_seconds", detect),
                               ("max_catch_up_seconds", catch_up)):
            results.append({"name": name, "objective": objectives[name], "achieved": achieved,
                            "passed": achieved <= objectives[name]})
    verdict: dict[str, Any] | None = {  # None for kind="generic": no drpoc verdict
        "pass": {"passed": True, "status": "passed", "reasons": []},
        "deviated": {"passed": False, "status": "failed",
                     "reasons": [f"{len(lost_ids)} acknowledged writes lost (ids 41, 42, 43): max_lost_writes 0",
                                 "replica did not converge: source has 3 more rows than the replica"]},
        "precondition": {"passed": False, "status": "precondition-failed",
                         "reasons": ["steady state not met before the fault: Replica_IO_Running is 'No' "
                                     "(Last_IO_Errno 1045, access denied); the fault was not injected"]},
        "interrupted": {"passed": False, "status": "aborted",
                        "reasons": [f"interrupted by SIGINT at t={cut or 0:.1f}s during the outage; "
                                    "the dead-man's switch brought the tunnel back up"]},
    }.get(kind)
    for r in results:
        if not r["passed"] and verdict is not None:
            verdict["reasons"].append(f"{r['name']} {r['achieved']} exceeds objective {r['objective']}")

    t0 = started
    run = []
    if kind not in ("precondition",):
        run.append(_run_record("start-writer", t0 + timedelta(seconds=1.0), end_t - 1.0,
                               {"attempted": attempted, "acknowledged": attempted}))
        run.append(_run_record("ipsec-down-aws", t0 + timedelta(seconds=t_fault), 0.8,
                               {"host": "aws-vpn", "command": "sudo -n ipsec down onprem-aws", "exit_status": 0,
                                "stdout": "closing CHILD_SA onprem-aws{1} with SPIs c4e7b0f1_i (1024 bytes) "
                                          "c8a33f7e_o (1152 bytes) and TS 10.20.0.0/16 === 192.168.64.0/24\n"
                                          "IKE_SA [1] closed successfully"}))
        if kind != "interrupted":
            run.append(_run_record("recover-vpn-stable-order", t0 + timedelta(seconds=t_rec), tunnel_rec + 0.4,
                                   {"order": ["aws down", "onprem down", "onprem up", "aws up"],
                                    "child_sa": "INSTALLED"}))
    rollbacks = []
    if kind in ("pass", "deviated", "precondition", "generic"):
        rb_t = ended - timedelta(seconds=1.2)
        rollbacks = [_run_record("ensure-tunnel-up", rb_t, 0.3, {"already_up": True}),
                     _run_record("ensure-replica-running", rb_t + timedelta(seconds=0.4), 0.2,
                                 {"io": "Yes" if kind != "precondition" else "No", "sql": "Yes"},
                                 status="succeeded" if kind != "precondition" else "failed")]
        if kind == "precondition":
            rollbacks[1]["output"] = "replica IO thread still not running: Last_IO_Errno 1045 (access denied)"
    status = {"interrupted": "interrupted"}.get(kind, "completed")
    deviated = kind == "deviated"
    journal: dict[str, Any] = {
        "chaoslib-version": "1.44.0",
        "platform": "Linux-6.1.0-27-amd64-x86_64-with-glibc2.36",
        "node": node,
        "experiment": _experiment(title),
        "start": started.isoformat(),
        "status": status,
        "deviated": deviated,
        "steady_states": {
            "before": _steady(started + timedelta(seconds=0.2), kind != "precondition",
                              "No" if kind == "precondition" else "Yes"),
            "after": (None if kind in ("precondition", "interrupted")
                      else _steady(ended - timedelta(seconds=2.0), not deviated)),
            "during": [],
        },
        "run": run,
        "rollbacks": rollbacks,
        "end": ended.isoformat(),
        "duration": round((ended - started).total_seconds(), 3),
    }
    if deviated:
        journal["steady_states"]["after"]["probes"][2]["tolerance_met"] = False
        journal["steady_states"]["after"]["probes"][2]["output"] = 42
    if kind == "generic":
        return journal
    journal["drpoc"] = {
        "schema": "drpoc.journal/1",
        "run_id": run_id,
        "scenario": scenario,
        "title": title,
        "controller": {"node": node, "user": "drpoc", "pid": 4242 + seed, "drpoc_version": "0.1.0"},
        "started": _iso(started),
        "ended": _iso(ended),
        "scope": {
            "inventory": "lab", "inventory_path": "/var/lib/drpoc-lab/inventory.yaml",
            "connection": "onprem-aws", "fault_site": "aws",
            "gateways": {"aws": "aws-vpn", "onprem": "onprem-vpn"},
            "source": "aws-db 127.0.0.1:13306", "replica": "onprem-db 127.0.0.1:13307",
            "subnets": {"aws": "10.20.0.0/16", "onprem": "192.168.64.0/24"},
        },
        "objectives": objectives,
        "timeline": {"interval_seconds": interval, "samples": tl},
        "events": events,
        "writes": {"attempted": attempted, "acknowledged": attempted, "observed": observed,
                   "lost": lost_ids, "unexpected": [], "duplicated": []},
        "metrics": metrics,
        "objective_results": results,
        "verdict": verdict,
        "safety": {"rollbacks_forced": kind == "interrupted",
                   "deadman": {"armed": kind != "precondition", "disarmed": kind in ("pass", "deviated"),
                               "fired": kind == "interrupted"},
                   "lock": "acquired"},
    }
    return journal
