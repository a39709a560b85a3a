"""Blast radius: while a drill acts on one replication pair, every other pair of the inventory must stay as it was —
its tunnel up on both gateways, its replica's IO and SQL threads running and in step with its source. A drill that
knocks another pair over (a hub gateway's other connection, a shared source) fails, naming the pair it hit.

A background thread, like the sampler, with SSH and MySQL connections of its own; it only reads (gateway status,
SHOW REPLICA STATUS, the drill lock's owner). Each gateway's status is read once per round, however many pairs
cross it (a hub carries one connection per spoke).

What counts:
- A pair is *watched* when it is healthy as the drill starts; one that is not is recorded as skipped, with why
  (the drill did not break it, so it proves nothing either way).
- A watched pair *leaks* when it is seen definitively unhealthy — a tunnel down or connecting, a replica thread
  stopped or connecting, or behind its source by more than `max_lag_seconds` — on two rounds in a row (one round is
  a glitch of the reading, not of the pair). A reading that fails (a host that does not answer) is inconclusive and
  counted apart.
- A pair whose own fault gateway's drill lock is held by another drill *of that pair* is under that drill: it is
  not judged here (its own drill judges it). That is how a campaign's parallel drills stay out of each other's
  verdicts.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Mapping

from .. import db, remote
from ..core.verdict import blast_radius_reasons
from ..inventory import Inventory
from ..services.gateway import helper, read_status, state_of
from ..services.replica import status_of
from . import safety

logger = logging.getLogger("chaostoolkit")

LOCK_PAIR_SEPARATOR = "@"  # the drill lock's scenario label is "<scenario>@<pair>" (safety.acquire_lock)


def lock_label(scenario: str, pair: str) -> str:
    return f"{scenario}{LOCK_PAIR_SEPARATOR}{pair}"


class BlastRadius:
    def __init__(self, inv: Inventory, others: list[Inventory], secrets: Mapping | None, drill, run_id: str,
                 interval: float = 1.0, max_lag_seconds: float = 10.0):
        self.inv = inv
        self.others = others
        self.secrets = secrets
        self.drill = drill
        self.run_id = run_id
        self.interval = interval
        self.max_lag = max_lag_seconds
        self.watched: list[str] = []
        self.skipped: dict[str, str] = {}
        self.leaks: list[dict[str, Any]] = []
        self.under_other_drill: dict[str, str] = {}
        self.rounds = 0
        self.inconclusive = 0
        self._bad: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drpoc-blast-radius", daemon=True)
        self._ssh = remote.SshPool()
        self._db = db.DbPool(ssh_pool=self._ssh)

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Take the baseline (which pairs are healthy now), then watch them in the background."""
        problems, errors = self._round([o.pair for o in self.others])
        for o in self.others:
            if problems.get(o.pair):
                self.skipped[o.pair] = "unhealthy before the drill: " + "; ".join(problems[o.pair])
            elif errors.get(o.pair):
                self.skipped[o.pair] = "unreadable before the drill: " + "; ".join(errors[o.pair])
            else:
                self.watched.append(o.pair)
        if self.watched:
            self._thread.start()

    def stop(self) -> dict[str, Any]:
        """One last round (the drill's restore is done), then the record for the journal."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if self.watched:
            self._judge()
        self._db.close_all()
        self._ssh.close_all()
        return self.record()

    def record(self) -> dict[str, Any]:
        return {"ok": not self.leaks, "pair": self.inv.pair, "watched": list(self.watched),
                "skipped": dict(self.skipped), "leaks": list(self.leaks),
                "under_other_drill": dict(self.under_other_drill), "rounds": self.rounds,
                "inconclusive_readings": self.inconclusive, "interval_seconds": self.interval,
                "max_lag_seconds": self.max_lag}

    def reasons(self) -> list[str]:
        """The verdict's words for each leak."""
        return blast_radius_reasons(self.inv.pair, self.leaks)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._judge()
            except Exception as exc:  # noqa: BLE001 — the watch must never stop the drill
                self.inconclusive += 1
                logger.debug("blast radius round failed: %s", exc)

    # --- one round -------------------------------------------------------------------------------------------
    def _judge(self) -> None:
        leaked = {leak["pair"] for leak in self.leaks}
        pending = [p for p in self.watched if p not in leaked]
        if not pending:
            return
        t = round(self.drill.t(), 3)
        problems, errors = self._round(pending)
        self.rounds += 1
        self.inconclusive += sum(1 for p in pending if errors.get(p))
        for pair in pending:
            bad = problems.get(pair)
            if not bad:
                self._bad[pair] = 0
                continue
            holder = self._other_drill_of(pair)
            if holder:
                self.under_other_drill.setdefault(pair, holder)
                self._bad[pair] = 0
                continue
            self._bad[pair] = self._bad.get(pair, 0) + 1
            if self._bad[pair] >= 2:
                what = "; ".join(bad)
                self.leaks.append({"pair": pair, "t": t, "what": what})
                self.drill.event("blast_radius_leak", pair=pair, what=what)
                logger.error("blast radius: pair %s hit at t=%.1fs: %s", pair, t, what)

    def _round(self, pairs: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """{pair: definitive problems}, {pair: readings that failed} for `pairs`."""
        by_name = {o.pair: o for o in self.others}
        statuses: dict[str, Any] = {}  # gateway host name -> parsed status (or the exception), once per round
        problems: dict[str, list[str]] = {}
        errors: dict[str, list[str]] = {}
        for pair in pairs:
            bad, failed = pair_health(by_name[pair], statuses, self._ssh, self._db, self.secrets, self.max_lag)
            if bad:
                problems[pair] = bad
            if failed:
                errors[pair] = failed
        return problems, errors

    def _other_drill_of(self, pair: str) -> str | None:
        """The run id of another drill holding the lock of `pair`'s fault gateway for that pair, if any."""
        return drill_of_pair(next(o for o in self.others if o.pair == pair), self._ssh, not_run_id=self.run_id)


def drill_of_pair(o: Inventory, ssh_pool, not_run_id: str | None = None) -> str | None:
    """The run id of a drill of pair `o` (other than `not_run_id`): the drill lock on the pair's fault gateway,
    held under the label `<scenario>@<pair>` and not past its lease. None when there is none or it cannot be read
    (then the pair is judged: what cannot be seen is not excused); a lease that ran out is a drill that died or
    overran, which excuses nothing either."""
    try:
        holder = safety.lock_holder(helper(o, o.drill.fault_site), pool=ssh_pool)
    except Exception:  # noqa: BLE001 — unknown: judge the pair
        return None
    if not holder or (not_run_id and holder.get("run_id") == not_run_id):
        return None
    expires = holder.get("expires")
    if isinstance(expires, (int, float)) and expires < time.time():  # the gateway's clock against ours: a lease
        return None                                                # is minutes long, skew is seconds
    if str(holder.get("scenario") or "").endswith(LOCK_PAIR_SEPARATOR + str(o.pair)):
        return str(holder.get("run_id") or "?")
    return None


def pair_health(o: Inventory, statuses: dict[str, Any], ssh_pool, db_pool, secrets: Mapping | None,
                max_lag: float) -> tuple[list[str], list[str]]:
    """(definitive problems, failed readings) of one pair: its tunnel on both gateways, its replica's threads and
    lag. `statuses` caches each gateway's status by host for the round (a hub is read once)."""
    bad: list[str] = []
    failed: list[str] = []
    for site in o.sites:
        host = o.gateway(site).host
        if host not in statuses:
            try:
                statuses[host] = read_status(o, site, pool=ssh_pool)
            except Exception as exc:  # noqa: BLE001
                statuses[host] = exc
        st = statuses[host]
        if isinstance(st, Exception):
            failed.append(f"{host}: {st}"[:160])
            continue
        state = state_of(o, site, st)
        if state in ("down", "connecting"):
            bad.append(f"tunnel {state} on {host} ({o.gateway(site).connection})")
        elif state != "up":
            failed.append(f"tunnel {state} on {host}")
    try:
        rs = status_of(o.replica, o, secrets, pool=db_pool)
    except Exception as exc:  # noqa: BLE001
        failed.append(f"replica {o.replica.host}: {exc}"[:160])
        return bad, failed
    if rs is None:
        bad.append(f"replica {o.replica.host} does not replicate")
    elif rs.io_running != "Yes" or rs.sql_running != "Yes":
        bad.append(f"replica {o.replica.host} IO={rs.io_running} SQL={rs.sql_running}"
                   + (f" ({rs.last_io_error[:80]})" if rs.last_io_error else ""))
    elif rs.seconds_behind_source is not None and rs.seconds_behind_source > max_lag:
        bad.append(f"replica {o.replica.host} {rs.seconds_behind_source}s behind its source (limit {max_lag:g}s)")
    return bad, failed
