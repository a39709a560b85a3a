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
import re
import shlex
import socket
import time
from typing import Any

from ..remote import SshHost, run

LOCK_DIR = "/run/drpoc-drill.lock"
DEADMAN_PID = "/run/drpoc-deadman.pid"
RECORD_DIR = "/run/drpoc-deadman.d"  # one record per run: what its switch did


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


def _ere(text: str) -> str:
    """`text` as a literal inside a POSIX extended regular expression (grep -E)."""
    return re.sub(r"([\\.\[\](){}*+?|^$])", r"\\\1", text)


def deadman_script(connection: str, seconds: float, run_id: str) -> str:
    """The switch, as one /bin/sh script. At its deadline it first looks at the tunnel: an IKE_SA ESTABLISHED with a
    CHILD_SA INSTALLED means the drill (or someone) already restored it — bouncing it then would be an outage nobody
    asked for, so it only records that it checked. Otherwise it restores from this side, checking before every
    `ipsec down`, so an INSTALLED CHILD_SA is never taken down. Every step is appended to this run's record in
    RECORD_DIR, which survives the drill and the next drill's arming: `drpoc recover` and the next drill read it to
    archive a drill that died."""
    c = shlex.quote(connection)
    ere = shlex.quote(_ere(connection))
    rec = f"{RECORD_DIR}/{run_id}"
    now = "$(date -u +%FT%TZ)"
    healthy = (f"ok() {{ s=$(ipsec statusall {c} 2>/dev/null); "
               f"printf '%s\\n' \"$s\" | grep -Eq \"^ *\"{ere}'\\[[0-9]+\\]: +ESTABLISHED' && "
               f"printf '%s\\n' \"$s\" | grep -Eq \"^ *\"{ere}'\\{{[0-9]+\\}}: +INSTALLED'; }}; ")
    return (f"mkdir -p {RECORD_DIR}; echo \"$$ {run_id}\" > {DEADMAN_PID}; "
            f"echo \"armed {now} {int(seconds)}\" >> {rec}; {healthy}"
            f"sleep {int(seconds)}; "
            f"if ok; then echo \"checked {now} healthy\" >> {rec}; else "
            f"echo \"fired {now}\" >> {rec}; i=0; "
            f"while [ $i -lt 10 ]; do i=$((i+1)); ok && break; "
            f"ipsec down {c} >/dev/null 2>&1; ipsec up {c} >/dev/null 2>&1; ok && break; sleep 3; done; "
            f"if ok; then echo \"restored {now}\" >> {rec}; else echo \"gave-up {now}\" >> {rec}; fi; "
            # the drill ran past its outage budget: let the next one start (only this run's lock)
            f"grep -q {shlex.quote(run_id)} {LOCK_DIR}/owner 2>/dev/null && rm -rf {LOCK_DIR}; fi; "
            f"grep -q {shlex.quote(run_id)} {DEADMAN_PID} 2>/dev/null && rm -f {DEADMAN_PID}")


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


def deadman_record(host: SshHost, run_id: str) -> dict[str, Any] | None:
    """This run's switch record on `host`, parsed; None when there is none."""
    r = run(host, ["sh", "-c", f"cat {RECORD_DIR}/{shlex.quote(run_id)} 2>/dev/null || true"], sudo=True)
    return parse_record(r.stdout) if r.stdout.strip() else None


def forget_deadman_record(host: SshHost, run_id: str) -> None:
    """Drop a run's record once its outcome is archived."""
    run(host, ["rm", "-f", f"{RECORD_DIR}/{run_id}"], sudo=True)


def disarm_deadman(host: SshHost, run_id: str | None = None) -> dict[str, Any]:
    """Stop the switch (this run's, or any with run_id=None). Reports whether it had already fired — and for this
    run, what its record says."""
    match = f"grep -q {shlex.quote(run_id)} {DEADMAN_PID} && " if run_id else ""
    rec = f"{RECORD_DIR}/$(cut -d' ' -f2 {DEADMAN_PID})"
    script = (f"if [ -f {DEADMAN_PID} ]; then {match}{{ pkill -TERM -g $(cut -d' ' -f1 {DEADMAN_PID}); "
              f"echo \"disarmed $(date -u +%FT%TZ)\" >> {rec}; rm -f {DEADMAN_PID}; echo disarmed; }}; fi")
    r = run(host, ["sh", "-c", script + "; true"], sudo=True)
    out: dict[str, Any] = {"disarmed": "disarmed" in r.stdout.splitlines(), "fired": False, "fired_at": None}
    if run_id:
        record = deadman_record(host, run_id)
        if record:
            out.update(fired=record["fired"], fired_at=record["fired_at"], record=record)
    return out


def deadman_records(host: SshHost) -> dict[str, dict[str, Any]]:
    """Every switch record left on `host` (run id → parsed record)."""
    r = run(host, ["sh", "-c", f"cd {RECORD_DIR} 2>/dev/null && for f in *; do [ -f \"$f\" ] && "
                               f"{{ echo \"== $f\"; cat \"$f\"; }}; done; true"], sudo=True)
    records: dict[str, list[str]] = {}
    current = None
    for line in r.stdout.splitlines():
        if line.startswith("== "):
            current = line[3:].strip()
            records[current] = []
        elif current:
            records[current].append(line)
    return {k: parse_record("\n".join(v)) for k, v in records.items()}
