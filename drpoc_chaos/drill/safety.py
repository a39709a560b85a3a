"""What keeps a drill from leaving production with the VPN down: a drill lock and a dead-man's switch, both kept on
the fault-side gateway (the host the fault is injected on), so they hold even when the orchestrator disappears.
Both are verbs of the gateway helper (services/drpoc-gw), the one command the drill user may run with sudo.

- The lock is a directory under /run created atomically with `mkdir`; its owner record names the run, the scenario,
  the controller and an expiry (the gateway's clock). A second drill is refused while it is held; an expired lock
  (its drill died and nothing cleaned up) is taken over by the helper, and the drill says so.
- The dead-man's switch is a detached process on the gateway (`setsid`), armed before the fault: after `max_outage`
  seconds it looks at the tunnel and, only if it is not healthy, brings it back from that side with the gateway's
  own tool (`ipsec` or `swanctl`), retried until the CHILD_SA is INSTALLED; it records every step and removes this
  run's lock. A normal recovery disarms it.
"""
from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

from ..services.gateway_helper import GatewayHelper

# where the helper keeps them on the gateway (see services/drpoc-gw)
LOCK_DIR = "/run/drpoc-drill.lock"
DEADMAN_PID = "/run/drpoc-deadman.pid"
RECORD_DIR = "/run/drpoc-deadman.d"


class LockHeld(RuntimeError):
    pass


def _label(text: str) -> str:
    """Free text the helper keeps in the lock record: only the characters it accepts (no quotes, no controls)."""
    return (re.sub(r"[^A-Za-z0-9._:/@ -]", "-", text).strip() or "-")[:120]


def _owner(text: str) -> dict[str, Any]:
    try:
        owner = json.loads(text)
    except ValueError:
        return {"unreadable": text[:200]}
    return owner if isinstance(owner, dict) else {"unreadable": text[:200]}


def acquire_lock(gw: GatewayHelper, run_id: str, ttl_seconds: float, scenario: str) -> dict[str, Any]:
    r = gw.run("lock-acquire", run_id, str(max(1, min(int(ttl_seconds), 86400))), _label(scenario),
               _label(socket.gethostname()), check=True)
    word, _, rest = r.stdout.strip().partition(" ")
    if word == "acquired":
        return {"state": "acquired", "host": gw.host.name, "owner": _owner(rest)}
    if word == "taken-over":
        return {"state": "taken-over", "host": gw.host.name, "previous": _owner(rest),
                "owner": {"run_id": run_id, "scenario": _label(scenario), "controller": _label(socket.gethostname())}}
    if word != "held":
        raise RuntimeError(f"{gw.host.name}: unexpected answer from the gateway helper's lock-acquire: "
                           f"{r.stdout.strip()[:120]!r}")
    holder = _owner(rest)
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder.get("acquired") or 0)))
    raise LockHeld(f"another drill holds the drill lock on {gw.host.name}: run {str(holder.get('run_id', '?'))[:8]} "
                   f"({holder.get('scenario', '?')}) from {holder.get('controller', '?')} since {since}; wait for "
                   f"it to finish, or if it died run `drpoc recover` (which restores the tunnel and releases "
                   f"the lock)")


def release_lock(gw: GatewayHelper, run_id: str | None = None) -> bool:
    """Remove the lock; with `run_id`, only if this run holds it. Returns True when a lock was removed."""
    r = gw.run("lock-release", *([run_id] if run_id else []))
    return "released" in r.stdout


def lock_holder(gw: GatewayHelper, pool=None) -> dict | None:
    r = gw.run("lock-show", **({"pool": pool} if pool is not None else {}))
    return _owner(r.stdout) if r.stdout.strip() else None


def arm_deadman(gw: GatewayHelper, control: str, connection: str, child: str, seconds: float,
                run_id: str) -> dict[str, Any]:
    """Start the switch on the gateway; it outlives this SSH session and this process. Returns its pid."""
    r = gw.run("deadman-arm", control, connection, child, str(max(1, int(seconds))), run_id, check=True)
    parts = r.stdout.split()
    if len(parts) < 2 or parts[1] != run_id or not parts[0].isdigit():
        raise RuntimeError(f"{gw.host.name}: the dead-man's switch did not start (read {r.stdout.strip()[:120]!r} "
                           f"from {DEADMAN_PID}); not injecting a fault without it")
    return {"armed": True, "host": gw.host.name, "pid": int(parts[0]), "fires_after_seconds": seconds,
            "control": control}


def parse_record(text: str) -> dict[str, Any]:
    """What a switch did, from its record (one `<word> <UTC time> [detail]` line per step)."""
    out: dict[str, Any] = {"armed_at": None, "seconds": None, "checked_at": None, "fired_at": None,
                           "restored_at": None, "gave_up_at": None, "disarmed_at": None}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        word, at = parts[0], parts[1]
        if word == "armed":
            out["armed_at"] = at
            if len(parts) > 2 and parts[2].isdigit():
                out["seconds"] = int(parts[2])
        elif word in ("checked", "fired", "restored", "disarmed"):
            out[f"{word}_at"] = at
        elif word == "gave-up":
            out["gave_up_at"] = at
    out["fired"] = out["fired_at"] is not None
    out["outcome"] = ("disarmed" if out["disarmed_at"] else
                      "restored the tunnel" if out["restored_at"] else
                      "could not restore the tunnel" if out["gave_up_at"] else
                      "fired, still restoring" if out["fired"] else
                      "found the tunnel healthy and did nothing" if out["checked_at"] else
                      "armed, not yet due" if out["armed_at"] else "no record")
    return out


def deadman_record(gw: GatewayHelper, run_id: str) -> dict[str, Any] | None:
    """This run's switch record on the gateway, parsed; None when there is none."""
    r = gw.run("deadman-record", run_id)
    return parse_record(r.stdout) if r.stdout.strip() else None


def forget_deadman_record(gw: GatewayHelper, run_id: str) -> None:
    """Drop a run's record once its outcome is archived."""
    gw.run("deadman-forget", run_id)


def disarm_deadman(gw: GatewayHelper, run_id: str | None = None) -> dict[str, Any]:
    """Stop the switch (this run's, or any with run_id=None). Reports whether it had already fired — and for this
    run, what its record says."""
    r = gw.run("deadman-disarm", *([run_id] if run_id else []))
    out: dict[str, Any] = {"disarmed": "disarmed" in r.stdout.splitlines(), "fired": False, "fired_at": None}
    if run_id:
        record = deadman_record(gw, run_id)
        if record:
            out.update(fired=record["fired"], fired_at=record["fired_at"], record=record)
    return out


def deadman_records(gw: GatewayHelper) -> dict[str, dict[str, Any]]:
    """Every switch record left on the gateway (run id → parsed record)."""
    r = gw.run("deadman-records")
    records: dict[str, list[str]] = {}
    current = None
    for line in r.stdout.splitlines():
        if line.startswith("== "):
            current = line[3:].strip()
            records[current] = []
        elif current:
            records[current].append(line)
    return {k: parse_record("\n".join(v)) for k, v in records.items()}
