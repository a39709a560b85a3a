"""What keeps a drill from leaving production with the VPN down: a drill lock and a dead-man's switch, both kept on
the fault-side gateway (the host the fault is injected on), so they hold even when the orchestrator disappears.

- The lock is a directory under /run created atomically with `mkdir`; its owner file names the run, the controller
  and an expiry. A second drill is refused while it is held; an expired lock (its drill died and nothing cleaned up)
  is taken over with a warning.
- The dead-man's switch is a detached shell on the gateway (`setsid`), armed before the fault: after `max_outage`
  seconds it brings the tunnel back from that side (`ipsec down` + `ipsec up`, retried until the CHILD_SA is
  INSTALLED), marks that it fired, and removes the lock. A normal recovery disarms it: it kills its process group
  with `pkill -g` (dash's `kill` takes no `--`, so `kill -- -PGID` silently fails under /bin/sh).
"""
from __future__ import annotations

import json
import shlex
import socket
import time
from typing import Any

from ..remote import SshHost, run

LOCK_DIR = "/run/drpoc-drill.lock"
DEADMAN_PID = "/run/drpoc-deadman.pid"
DEADMAN_FIRED = "/run/drpoc-deadman.fired"


class LockHeld(RuntimeError):
    pass


def acquire_lock(host: SshHost, run_id: str, ttl_seconds: float, scenario: str) -> dict[str, Any]:
    owner = {"run_id": run_id, "scenario": scenario, "controller": socket.gethostname(),
             "acquired": time.time(), "expires": time.time() + ttl_seconds}
    body = shlex.quote(json.dumps(owner))
    script = f"mkdir {LOCK_DIR} 2>/dev/null && printf %s {body} > {LOCK_DIR}/owner && echo acquired || " \
             f"cat {LOCK_DIR}/owner 2>/dev/null || echo '{{}}'"
    r = run(host, ["sh", "-c", script], sudo=True, check=True)
    out = r.stdout.strip()
    if out.endswith("acquired"):
        return {"state": "acquired", "host": host.name, "owner": owner}
    try:
        holder = json.loads(out.splitlines()[-1])
    except (ValueError, IndexError):
        holder = {}
    if holder.get("expires", 0) < time.time():
        # the holder died without cleaning up, and its lease ran out: take over, say so
        run(host, ["sh", "-c", f"rm -rf {LOCK_DIR} && mkdir {LOCK_DIR} && printf %s {body} > {LOCK_DIR}/owner"],
            sudo=True, check=True)
        return {"state": "taken-over", "host": host.name, "owner": owner, "previous": holder}
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.get("acquired", 0)))
    raise LockHeld(f"another drill holds the drill lock on {host.name}: run {holder.get('run_id', '?')[:8]} "
                   f"({holder.get('scenario', '?')}) from {holder.get('controller', '?')} since {since}; wait for "
                   f"it to finish, or if it died run `drpoc recover` (which restores the tunnel and releases "
                   f"the lock)")


def release_lock(host: SshHost, run_id: str | None = None) -> bool:
    """Remove the lock; with `run_id`, only if this run holds it. Returns True when a lock was removed."""
    if run_id:
        script = f"grep -q {shlex.quote(run_id)} {LOCK_DIR}/owner 2>/dev/null && rm -rf {LOCK_DIR} && echo released"
    else:
        script = f"test -d {LOCK_DIR} && rm -rf {LOCK_DIR} && echo released"
    r = run(host, ["sh", "-c", script + " || true"], sudo=True)
    return "released" in r.stdout


def lock_holder(host: SshHost) -> dict | None:
    r = run(host, ["sh", "-c", f"cat {LOCK_DIR}/owner 2>/dev/null || true"], sudo=True)
    try:
        return json.loads(r.stdout) if r.stdout.strip() else None
    except ValueError:
        return {"unreadable": r.stdout[:200]}


def deadman_script(connection: str, seconds: float, run_id: str) -> str:
    c = shlex.quote(connection)
    return (f"echo \"$$ {run_id}\" > {DEADMAN_PID}; rm -f {DEADMAN_FIRED}; sleep {int(seconds)}; "
            f"date -u +%FT%TZ > {DEADMAN_FIRED}; "
            f"for i in 1 2 3 4 5 6 7 8 9 10; do ipsec down {c} >/dev/null 2>&1; ipsec up {c} >/dev/null 2>&1; "
            f"ipsec statusall {c} | grep -q INSTALLED && break; sleep 3; done; "
            f"rm -f {DEADMAN_PID}; rm -rf {LOCK_DIR}")


def arm_deadman(host: SshHost, connection: str, seconds: float, run_id: str) -> dict[str, Any]:
    """Start the switch on `host`; it outlives this SSH session and this process. Returns its pid."""
    script = deadman_script(connection, seconds, run_id)
    # setsid -f: own session, detached; closed stdio so the SSH channel can close at once
    r = run(host, f"sudo -n setsid -f sh -c {shlex.quote(script)} </dev/null >/dev/null 2>&1; sleep 0.2; "
                  f"cat {DEADMAN_PID}" if host.sudo else
            f"setsid -f sh -c {shlex.quote(script)} </dev/null >/dev/null 2>&1; sleep 0.2; cat {DEADMAN_PID}",
            check=True)
    parts = r.stdout.split()
    if len(parts) < 2 or parts[1] != run_id:
        raise RuntimeError(f"{host.name}: the dead-man's switch did not start (read {r.stdout.strip()!r} from "
                           f"{DEADMAN_PID}); not injecting a fault without it")
    return {"armed": True, "host": host.name, "pid": int(parts[0]), "fires_after_seconds": seconds}


def disarm_deadman(host: SshHost, run_id: str | None = None) -> dict[str, Any]:
    """Stop the switch (this run's, or any with run_id=None). Reports whether it had already fired."""
    match = f"grep -q {shlex.quote(run_id)} {DEADMAN_PID} && " if run_id else ""
    script = (f"if [ -f {DEADMAN_PID} ]; then {match}pkill -TERM -g $(cut -d' ' -f1 {DEADMAN_PID}); "
              f"rm -f {DEADMAN_PID}; echo disarmed; fi; "
              f"if [ -f {DEADMAN_FIRED} ]; then echo fired $(cat {DEADMAN_FIRED}); fi")
    r = run(host, ["sh", "-c", script + "; true"], sudo=True)
    fired = [l for l in r.stdout.splitlines() if l.startswith("fired")]
    return {"disarmed": "disarmed" in r.stdout, "fired": bool(fired),
            "fired_at": fired[0].split(None, 1)[1] if fired and len(fired[0].split()) > 1 else None}


def clear_fired_marker(host: SshHost) -> None:
    run(host, ["rm", "-f", DEADMAN_FIRED], sudo=True)
