"""Drills that died: an orchestrator killed mid-drill (SIGKILL, power, OOM) writes no journal, so every drill writes
an intent into the archive before its fault and keeps its last step in a progress file beside the archive. Whoever
comes next — `drpoc recover`, or the next drill once it holds the lock — turns each intent that has no outcome into
an archived journal with status "died": who ran it, when, the last step known, what the dead-man's switch did (from
its record on the gateway), and what recover did. An auditor then sees a failed drill, not a missing one.

`progress` and `died_journal` are pure; `close_unfinished` talks to the gateway and the archive.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..core.clock import utc_now_iso
from ..core.model import DrillResult
from ..core.verdict import Verdict
from ..evidence.archive import archive_journal, unfinished_intents
from ..remote import RemoteError
from ..services.errors import StepFailed
from . import safety

logger = logging.getLogger("chaostoolkit")

PROGRESS_DIR = ".inflight"  # inside the archive directory: one small file per running drill


def progress_path(archive_dir: Path, run_id: str) -> Path:
    return Path(archive_dir) / PROGRESS_DIR / f"{run_id}.json"


def write_progress(archive_dir: Path, run_id: str, step: str, t: float, *, fault_injected: bool) -> None:
    """Remember the step a drill is at (atomically: a kill between two writes leaves the previous step)."""
    path = progress_path(archive_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"run_id": run_id, "step": step, "t": round(t, 3), "at": utc_now_iso(),
                               "fault_injected": fault_injected}))
    os.replace(tmp, path)


def read_progress(archive_dir: Path, run_id: str) -> dict[str, Any] | None:
    try:
        data = json.loads(progress_path(archive_dir, run_id).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def forget_progress(archive_dir: Path, run_id: str) -> None:
    path = progress_path(archive_dir, run_id)
    try:
        path.unlink()
    except OSError:
        pass
    try:
        path.parent.rmdir()  # only when no other drill is in flight: the archive holds evidence, not scratch files
    except OSError:
        pass


def died_journal(intent: Mapping[str, Any], *, detected_by: str, progress: Mapping[str, Any] | None,
                 deadman: Mapping[str, Any] | None, recover: Mapping[str, Any] | None,
                 now: str | None = None) -> dict[str, Any]:
    """A Chaos Toolkit-shaped journal for a drill that died, with a `drpoc` key whose verdict is "died"."""
    now = now or utc_now_iso()
    run_id = str(intent.get("run_id"))
    last_step = progress.get("step") if progress else None
    reasons = ["the drill died: its orchestrator stopped without a journal"
               + (f" during '{last_step}'" if last_step else " before its first step")
               + f" (found by {detected_by})"]
    events: list[dict[str, Any]] = [{"name": "drill_started", "t": 0.0, "at": intent.get("started"), "detail": {}}]
    if progress and progress.get("fault_injected"):
        reasons.append("the fault had been injected: the outage lasted until the dead-man's switch or a recovery "
                       "restored the tunnel")
    if progress:
        events.append({"name": "last_step_seen", "t": progress.get("t"), "at": progress.get("at"),
                       "detail": {"step": last_step}})
    if deadman:
        if deadman.get("fired_at"):
            reasons.append(f"the dead-man's switch fired at {deadman['fired_at']}"
                           + (" and restored the tunnel" if deadman.get("restored_at") else
                              " and could NOT restore the tunnel" if deadman.get("gave_up_at") else ""))
            events.append({"name": "deadman_fired", "t": None, "at": deadman["fired_at"], "detail": {}})
        elif deadman.get("checked_at"):
            events.append({"name": "deadman_checked_healthy", "t": None, "at": deadman["checked_at"],
                           "detail": {}})
    if recover is not None:
        events.append({"name": "recovered_by_hand", "t": None, "at": now,
                       "detail": {k: recover.get(k) for k in ("tunnel", "replica") if k in recover}})
        if recover.get("ok") is False:
            reasons.append("`drpoc recover` could not restore everything: " +
                           "; ".join(f"{k}: {recover[k]}" for k in ("tunnel", "replica") if k in recover))
    return {
        "chaoslib-version": None,
        "platform": None,
        "node": (intent.get("controller") or {}).get("node") if isinstance(intent.get("controller"), dict)
        else None,
        "experiment": {"title": intent.get("title") or intent.get("scenario"), "version": "1.0.0"},
        "start": intent.get("started"),
        "end": now,
        "duration": None,
        "status": "interrupted",
        "deviated": False,
        "steady_states": {"before": None, "after": None, "during": []},
        "run": [],
        "rollbacks": [],
        "drpoc": DrillResult(
            run_id=run_id, scenario=intent.get("scenario"), title=intent.get("title"),
            controller=dict(intent.get("controller") or {}), started=intent.get("started"), ended=None,
            closed_at=now, scope=dict(intent.get("scope") or {}), objectives=dict(intent.get("objectives") or {}),
            settings=dict(intent.get("settings") or {}),
            timeline={"interval_seconds": None, "samples": [], "sample_errors": 0}, events=events,
            writes={"attempted": None, "acknowledged": None, "observed": None, "lost": [], "unexpected": [],
                    "duplicated": []},
            verdict=Verdict(passed=False, status="died", reasons=reasons),
            died={"detected_by": detected_by, "last_step": last_step,
                  "last_step_at": progress.get("at") if progress else None,
                  "fault_injected": bool(progress and progress.get("fault_injected")),
                  "deadman": dict(deadman) if deadman else None, "recover": dict(recover) if recover else None},
            safety={"restore": {}, "deadman": dict(deadman) if deadman else None, "lock": None, "notes": []},
        ).to_dict(),
    }


def close_unfinished(archive_dir: Path, *, detected_by: str, gateway=None, exclude: Iterable[str] = (),
                     recover: Mapping[str, Any] | None = None, secrets: Iterable[str] = (),
                     say: Callable[[str], None] = logger.info) -> list[dict[str, Any]]:
    """Archive a "died" journal for every intent in `archive_dir` with no outcome (except runs in `exclude`) that
    belongs to `gateway` (the fault-side gateway's GatewayHelper; None: every intent). Only call this while holding
    the drill lock of that gateway, or after `drpoc recover`: then no drill of those intents can still be running.
    Returns what was archived."""
    archive_dir = Path(archive_dir)
    if not archive_dir.is_dir():
        return []
    closed = []
    skip = set(exclude)
    for intent in unfinished_intents(archive_dir):
        run_id = str(intent.get("run_id") or "")
        if not run_id or run_id in skip:
            continue
        gw = intent.get("gateway") if isinstance(intent.get("gateway"), dict) else {}
        if gateway is not None and gw and (gw.get("address"), gw.get("port")) != (gateway.host.address,
                                                                               gateway.host.port):
            continue  # another estate's drill, archived in the same place: not ours to judge
        deadman = None
        if gateway is not None:
            try:
                deadman = safety.deadman_record(gateway, run_id)
            except (RemoteError, StepFailed) as exc:
                say(f"drill {run_id[:8]}: could not read its dead-man's switch record on {gateway.host.name}: "
                    f"{exc}")
        journal = died_journal(intent, detected_by=detected_by, progress=read_progress(archive_dir, run_id),
                               deadman=deadman, recover=recover)
        entry = archive_journal(journal, archive_dir, secrets=secrets)
        forget_progress(archive_dir, run_id)
        if gateway is not None and deadman is not None:
            try:
                safety.forget_deadman_record(gateway, run_id)
            except (RemoteError, StepFailed):
                pass
        say(f"drill {run_id[:8]} ({intent.get('scenario')}) started {intent.get('started')} had died: archived "
            f"as {entry.file}")
        closed.append({"run_id": run_id, "scenario": intent.get("scenario"), "archived_as": str(entry.path),
                       "last_step": journal["drpoc"]["died"]["last_step"], "deadman": deadman})
    return closed
