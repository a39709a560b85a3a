"""The drill control: binds a Chaos Toolkit run to what a DR drill must guarantee.

Declared once in an experiment:

    controls:
      - name: drpoc-drill
        provider: {type: python, module: drpoc_chaos.drill.control}

Before the run it takes the drill lock on the fault-side gateway and starts the timeline sampler. Before the fault
action it arms the dead-man's switch (no switch, no fault). After the run — whatever happened: a failed or raising
activity, a deviation, Ctrl-C, SIGTERM, any `--rollback-strategy` — it restores the tunnel and the replica if this
run took them down, disarms the switch, checks every acknowledged write on the replica, computes the DR metrics and
the verdict, writes them under the journal's `drpoc` key (docs/JOURNAL.md), marks the run failed when the verdict
is not a pass (so `chaos run` exits 1), releases the lock and archives the journal with secrets redacted.
"""
from __future__ import annotations

import getpass
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from chaoslib.exceptions import InterruptExecution

from .. import __version__
from ..core import recorder as drill_state
from ..core.clock import utc_now_iso
from ..core.failover import figures as failover_figures
from ..core.feasibility import ReplicaSettings, assess
from ..core.metrics import compute_metrics, evaluate_objectives, verdict, write_sets
from ..core.model import DrillResult
from ..core.verdict import Verdict, split_brain_times
from ..db import DbError
from ..evidence.archive import archive_journal, record_intent
from ..inventory import Inventory, InventoryError, SshHost, resolve_secret
from ..remote import RemoteError
from ..services import failover, gateway, replica
from ..services.context import close_all, fleet, inventory, sql
from ..services.errors import StepFailed
from ..services.restore import restore as restore_estate
from ..services.writer import FAULT_REFUSED
from . import died, safety
from .blast_radius import BlastRadius, lock_label
from .sampler import Sampler

logger = logging.getLogger("chaostoolkit")

FAULT_FUNCS = {"tunnel_down", "lose_site"}


@dataclass
class DrillConfig:
    """Every knob of a drill, from the experiment's `configuration` (or `--var` / `--var-file`)."""

    scenario: str = "drill"
    sample_interval_seconds: float = 0.5
    max_outage_seconds: float = 120.0
    deadman: bool = True
    lock: bool = True
    expect_outage: bool = True
    restore_timeout_seconds: float = 90.0
    final_catch_up_timeout_seconds: float = 60.0
    archive: bool = True
    archive_dir: str = "journal"
    objective_rpo_seconds: float | None = None
    objective_rto_seconds: float | None = None
    objective_detection_seconds: float | None = None
    objective_tunnel_recovery_seconds: float | None = None
    objective_catch_up_seconds: float | None = None
    max_lost_writes: int = 0
    objective_failover_rto_seconds: float | None = None
    objective_failover_rpo_seconds: float | None = None
    objective_switchover_window_seconds: float | None = None
    reseed: str = "auto"  # a failover drill's old primary with errant transactions: auto (re-seed) | refuse
    # a fleet: watch every other pair while this one is drilled (drill/blast_radius.py)
    blast_radius: bool = True
    blast_radius_interval_seconds: float = 1.0
    blast_radius_max_lag_seconds: float = 10.0
    feasibility: str = "refuse"  # refuse | warn | off: an objective or timeout the replica cannot meet

    @classmethod
    def from_configuration(cls, configuration: Mapping | None) -> "DrillConfig":
        cfg = dict(configuration or {})
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in cfg or cfg[f.name] in (None, ""):
                continue
            v = cfg[f.name]
            kind = str(f.type)
            if "bool" in kind:
                v = _boolean(f.name, v)
            elif "int" in kind and "float" not in kind:
                v = int(v)
            elif "float" in kind:
                v = float(v)
            else:
                v = str(v)
            kwargs[f.name] = v
        if "DRPOC_ARCHIVE_DIR" in os.environ and "archive_dir" not in cfg:
            kwargs["archive_dir"] = os.environ["DRPOC_ARCHIVE_DIR"]
        return cls(**kwargs)

    def objectives(self) -> dict[str, float | int | None]:
        return {"rpo_seconds": self.objective_rpo_seconds, "rto_seconds": self.objective_rto_seconds,
                "detection_seconds": self.objective_detection_seconds,
                "tunnel_recovery_seconds": self.objective_tunnel_recovery_seconds,
                "catch_up_seconds": self.objective_catch_up_seconds, "max_lost_writes": self.max_lost_writes,
                # the failover drill's, only when set (the VPN drills' journals stay as they were)
                **{k: v for k, v in (("failover_rto_seconds", self.objective_failover_rto_seconds),
                                     ("failover_rpo_seconds", self.objective_failover_rpo_seconds),
                                     ("switchover_window_seconds", self.objective_switchover_window_seconds))
                   if v is not None}}


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    # a typo must not silently turn a safety off (deadman: "ture")
    raise ValueError(f"configuration {name}: {value!r} is not a boolean (use true or false)")


class _Run:
    """What the control keeps between its hooks for the one run of this process."""

    def __init__(self) -> None:
        self.cfg: DrillConfig | None = None
        self.inv: Inventory | None = None
        self.secrets: Mapping | None = None
        self.drill: drill_state.Drill | None = None
        self.sampler: Sampler | None = None
        self.lock: dict | None = None
        self.deadman: dict | None = None
        self.setup_error: str | None = None
        self.cause: str | None = None  # why the drill did not start: locked, no-inventory, unreachable, auth, …
        self.notes: list[str] = []
        self.configuration: Mapping = {}
        self.intent: Any = None
        self.feasibility: dict | None = None
        self.closed_died: list[dict] = []
        self.blast: BlastRadius | None = None
        self.others: list[Inventory] = []


_run = _Run()


def before_experiment_control(context: dict, configuration: Mapping | None = None,
                              secrets: Mapping | None = None, **kwargs) -> None:
    """Set the drill up; anything unexpected stops the run here (Chaos Toolkit would otherwise log a failing
    control and go on — a drill without its control must never reach the fault)."""
    global _run
    _run = _Run()
    _run.configuration = dict(configuration or {})
    restore_sigint()
    try:
        _setup(configuration, secrets)
    except Exception as exc:  # noqa: BLE001 — fail safe: no fault without a drill
        _run.cause = _run.cause or cause_of(exc)
        _run.setup_error = _run.setup_error or _plain(exc)
        if _run.cfg is None:
            _run.cfg = DrillConfig()
        raise InterruptExecution(f"drill not started ({_run.cause}): {_run.setup_error}") from None


def restore_sigint() -> None:
    """A drill started in the background (`nohup chaos run … &`) inherits SIGINT as ignored, and Python then installs
    no KeyboardInterrupt handler: `kill -INT` would be lost and the drill run to its end. Give it back."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            logger.info("SIGINT was ignored (started in the background); the drill can be interrupted again")
    except ValueError:  # not the main thread (an embedding runner): its own signal handling applies
        pass


def _plain(exc: BaseException) -> str:
    """The sentence of a user-facing error, without a class name; unexpected errors keep theirs."""
    if isinstance(exc, (InventoryError, RemoteError, DbError, StepFailed, safety.LockHeld, InterruptExecution,
                        ValueError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def cause_of(exc: BaseException) -> str:
    """Why a drill could not start, in one word the review counts by."""
    if isinstance(exc, safety.LockHeld):
        return "locked"
    if isinstance(exc, InventoryError):
        return "no-inventory" if str(exc.problem).startswith("no inventory file") else "bad-input"
    if isinstance(exc, RemoteError):
        if exc.kind in ("auth", "hostkey", "sudo"):
            return "auth"
        if exc.kind == "config":
            return "bad-input"
        if exc.kind == "command":
            return "setup-error"
        return "unreachable"
    if isinstance(exc, DbError):
        if exc.code in (1044, 1045, 1142, 1227):
            return "auth"
        return "unreachable" if exc.code is None or exc.code >= 2000 else "setup-error"
    if isinstance(exc, ValueError):
        return "bad-input"
    return "setup-error"


def _setup(configuration: Mapping | None, secrets: Mapping | None) -> None:
    _run.drill = d = drill_state.start()
    d.event("drill_started")
    cfg = DrillConfig.from_configuration(configuration)
    if cfg.feasibility not in ("refuse", "warn", "off"):
        raise ValueError(f"configuration feasibility: {cfg.feasibility!r} is not one of refuse, warn, off")
    if cfg.reseed not in failover.RESEED_MODES:
        raise ValueError(f"configuration reseed: {cfg.reseed!r} is not one of {', '.join(failover.RESEED_MODES)}")
    _run.cfg, _run.secrets = cfg, secrets
    _run.inv = inv = inventory(configuration)
    _run.others = fleet(configuration).others(inv.pair)
    gw = gateway.helper(inv, inv.drill.fault_site)
    if cfg.feasibility != "off":
        _check_feasibility(cfg, inv, secrets)
    if cfg.lock:
        # in a fleet the lock says which pair is under drill: another drill's blast-radius watch reads it
        _run.lock = safety.acquire_lock(gw, d.run_id,
                                        ttl_seconds=cfg.max_outage_seconds + cfg.restore_timeout_seconds + 600,
                                        scenario=lock_label(cfg.scenario, inv.pair) if _run.others else cfg.scenario)
        if _run.lock["state"] == "taken-over":
            logger.warning("took over an expired drill lock on %s (run %s)", _run.lock["host"],
                           _run.lock["previous"].get("run_id", "?"))
    if cfg.archive:
        # we hold the gateway's lock: any earlier drill of it with no outcome is dead, not running
        if cfg.lock:
            try:
                _run.closed_died = died.close_unfinished(Path(cfg.archive_dir), detected_by="the next drill",
                                                         gateway=gw, exclude=[d.run_id],
                                                         secrets=_secret_values())
            except Exception as exc:  # noqa: BLE001 — evidence of an old drill must not stop this one
                logger.error("could not archive earlier drills that died: %s", exc)
        _run.intent = record_intent(Path(cfg.archive_dir), _intent(cfg, gw.host, d, inv), secrets=_secret_values())
        died.write_progress(Path(cfg.archive_dir), d.run_id, "drill_started", d.t(), fault_injected=False)
    _run.sampler = Sampler(inv, secrets, d, interval=cfg.sample_interval_seconds)
    _run.sampler.start()
    if _run.others and cfg.blast_radius:
        _run.blast = BlastRadius(inv, _run.others, secrets, d, d.run_id,
                                 interval=cfg.blast_radius_interval_seconds,
                                 max_lag_seconds=cfg.blast_radius_max_lag_seconds)
        _run.blast.start()
        logger.info("blast radius: watching %d other pair(s)%s", len(_run.blast.watched),
                    f"; skipped {', '.join(f'{k} ({v})' for k, v in _run.blast.skipped.items())}"
                    if _run.blast.skipped else "")
    logger.info("drill %s started (scenario %s); timeline every %.2fs", d.run_id[:8], cfg.scenario,
                cfg.sample_interval_seconds)


def _check_feasibility(cfg: DrillConfig, inv: Inventory, secrets: Mapping | None) -> None:
    settings = ReplicaSettings(**replica.read_settings(inv, secrets))
    result = assess(settings, _run.configuration)
    _run.feasibility = {"replica": settings.to_dict(), **result.to_dict()}
    for warning in result.warnings:
        logger.warning("feasibility: %s", warning)
    if result.refusals and cfg.feasibility == "refuse":
        _run.cause = "infeasible"
        raise ValueError("this drill cannot meet its settings on this replica (net timeout "
                         f"{settings.net_timeout:g}s, connect retry {settings.connect_retry or 0:g}s): "
                         + "; ".join(result.refusals) + " — or set feasibility: warn to run it anyway")
    for refusal in result.refusals:
        logger.warning("feasibility (not enforced): %s", refusal)


def _intent(cfg: DrillConfig, gw: SshHost, d: drill_state.Drill, inv: Inventory) -> dict[str, Any]:
    expires = time.time() + cfg.max_outage_seconds + cfg.restore_timeout_seconds + 600
    return {"schema": "drpoc-intent/1", "run_id": d.run_id, "scenario": cfg.scenario, "started": d.started,
            "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
            "controller": {"node": socket.gethostname(), "user": getpass.getuser(), "pid": os.getpid(),
                           "drpoc_version": __version__},
            "scope": inv.scope(),
            "gateway": {"name": gw.name, "address": gw.address, "port": gw.port},
            "connection": inv.drill.connection,
            "objectives": cfg.objectives(),
            "settings": {"sample_interval_seconds": cfg.sample_interval_seconds,
                         "max_outage_seconds": cfg.max_outage_seconds, "expect_outage": cfg.expect_outage}}


def _note_progress(step: str) -> None:
    d, cfg = _run.drill, _run.cfg
    if d is None or cfg is None or not cfg.archive or _run.intent is None:
        return
    try:
        died.write_progress(Path(cfg.archive_dir), d.run_id, step, d.t(), fault_injected=d.fault_injected)
    except OSError as exc:
        logger.debug("could not record the drill's progress: %s", exc)


def before_activity_control(context: dict, configuration: Mapping | None = None,
                            secrets: Mapping | None = None, **kwargs) -> None:
    """Arm the dead-man's switch before any fault; refuse the fault if it cannot be armed."""
    _note_progress(str((context or {}).get("name") or "?"))
    provider = (context or {}).get("provider", {})
    if provider.get("func") not in FAULT_FUNCS or (provider.get("arguments") or {}).get("fault") is False:
        return
    if _run.setup_error or _run.inv is None or _run.cfg is None or _run.drill is None:
        raise InterruptExecution("refusing to inject a fault: the drill was not set up")
    if not _run.cfg.deadman or _run.deadman:
        return
    inv, site = _run.inv, _run.inv.drill.fault_site
    gw = gateway.helper(inv, site)
    try:
        ike, child = gateway.names(inv, site)
        _run.deadman = safety.arm_deadman(gw, gateway.control_of(inv, site), ike, child,
                                          _run.cfg.max_outage_seconds, _run.drill.run_id)
    except (RemoteError, StepFailed, RuntimeError) as exc:
        raise InterruptExecution(
            f"refusing to inject a fault: dead-man's switch not armed on {gw.host.name}: {exc}") from exc
    _run.drill.event("deadman_armed", host=gw.host.name, seconds=_run.cfg.max_outage_seconds)


def after_activity_control(context: dict, state: dict, configuration: Mapping | None = None,
                           secrets: Mapping | None = None, **kwargs) -> None:
    """Make SIGTERM stop the run. Chaos Toolkit turns SIGTERM into InterruptExecution in the main thread, but when
    that lands inside a Python activity the provider wraps it as an ordinary activity failure and the method goes on
    (a held outage would continue). Re-raised here, it interrupts the run; the tunnel is then restored below."""
    exc = " ".join((state or {}).get("exception") or []) if isinstance(state, dict) else ""
    provider = (context or {}).get("provider", {})
    d = _run.drill
    if provider.get("func") in FAULT_FUNCS and isinstance(state, dict) and state.get("status") == "failed" \
            and d is not None and not d.fault_injected:
        # a writer running until an event of the fault's aftermath (caught_up, switched_back) would otherwise
        # write until its hard bound for nothing
        d.event(FAULT_REFUSED, activity=str((context or {}).get("name") or "?"))
    if "InterruptExecution" in exc:
        name = (context or {}).get("name", "?")
        raise InterruptExecution(f"interrupted during '{name}': {exc.strip().splitlines()[-1][:200]}")


class _DeferSignals:
    """Hold SIGINT/SIGTERM while the control restores the tunnel: a second Ctrl-C must not leave it down."""

    def __enter__(self):
        self.received: list[int] = []
        self.previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, lambda s, f: self.received.append(s))
            except ValueError:  # not the main thread: nothing to defer
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        if self.received:
            logger.warning("signal(s) %s received while restoring; restoration finished first", self.received)
        return False


def after_experiment_control(context: dict, state: dict, configuration: Mapping | None = None,
                             secrets: Mapping | None = None, **kwargs) -> None:
    journal = state
    with _DeferSignals():
        try:
            _finish(journal)
        finally:
            drill_state.finish()
            close_all()


def _restore(notes: list[str], d: drill_state.Drill, cfg: DrillConfig, inv: Inventory) -> dict[str, Any]:
    """Bring tunnel and replica back if this run took them down (the one restore sequence; idempotent)."""
    if not d.fault_injected:
        return {"forced": False}
    fo: dict[str, Any] | None = None
    if failover.in_progress(inv):
        # a failover drill that did not finish: back to the original topology first (fences before it unfences)
        try:
            fo = failover.finish(inv, bring_back=d.undo_loss, reseed_mode=cfg.reseed,
                                 timeout=cfg.restore_timeout_seconds, tunnel_timeout=cfg.restore_timeout_seconds,
                                 secrets=_run.secrets)
            notes.append("the control finished the failover (" + (", ".join(fo["steps"]) or "nothing left") + ")")
        except Exception as exc:  # noqa: BLE001 — report it, never hide it
            fo = {"ok": False, "error": str(exc)}
            notes.append(f"the failover could not be finished: {exc} — run `drpoc recover`")
    try:
        out = restore_estate(inv, tunnel_timeout=cfg.restore_timeout_seconds, secrets=_run.secrets)
    except Exception as exc:  # noqa: BLE001 — an unexpected failure while restoring: report it, never hide it
        out = {"ok": False, "forced": False, "tunnel": f"FAILED: {exc}",
               "notes": [f"restoring failed unexpectedly: {exc} — run `drpoc recover`"]}
    if out.get("forced"):
        notes.append("the control restored the tunnel (the method or its rollbacks did not)")
    notes.extend(out.pop("notes", []))
    if fo is not None:
        out["failover"] = fo
        if not fo.get("ok"):
            out["ok"] = False
    return out


def _derive_events(samples: list[dict], events: list[dict], sites: list[str]) -> list[dict]:
    """Fill milestones the activities did not record from the timeline (0.5 s resolution)."""
    have = {e["name"] for e in events}
    fault = next((e["t"] for e in events if e["name"] == "fault_injected"), None)
    if fault is None:
        return events
    added = []
    if "outage_detected" not in have:
        s = next((s for s in samples if s["t"] >= fault and s.get("io") not in ("Yes", None)), None)
        if s:
            added.append({"name": "outage_detected", "t": s["t"], "at": None, "detail": {"from": "timeline"}})
    rec = next((e["t"] for e in events if e["name"] == "recovery_started"), None)
    if rec is not None and "tunnel_up" not in have:
        s = next((s for s in samples if s["t"] >= rec and all(s.get(f"{x}_tunnel") == "up" for x in sites)), None)
        if s:
            added.append({"name": "tunnel_up", "t": s["t"], "at": None, "detail": {"from": "timeline"}})
    up = next((e["t"] for e in events + added if e["name"] == "tunnel_up"), None)
    if up is not None and "io_reconnected" not in have:
        s = next((s for s in samples if s["t"] >= up and s.get("io") == "Yes"), None)
        if s:
            added.append({"name": "io_reconnected", "t": s["t"], "at": None, "detail": {"from": "timeline"}})
    return sorted(events + added, key=lambda e: e["t"])


def _observed_rows(tag: str, inv: Inventory) -> list[tuple[int, str]]:
    rows = sql(inv.replica, inv, "SELECT id, msg FROM testdb.ping WHERE msg LIKE %s",
               (f"drpoc:{tag}:%",), secrets=_run.secrets)
    return [(int(r["id"]), r["msg"]) for r in rows]


def _finish(journal: dict) -> None:
    d, cfg, notes = _run.drill, _run.cfg, _run.notes
    if d is None or cfg is None:
        return
    restore: dict[str, Any] = {}
    sets = None
    seen: set[str] | None = None
    if _run.inv is not None and not _run.setup_error:
        restore = _restore(notes, d, cfg, _run.inv)
        gw = gateway.helper(_run.inv, _run.inv.drill.fault_site)
        if _run.deadman:
            try:
                dm = safety.disarm_deadman(gw, d.run_id)
                _run.deadman.update(dm)
                d.event("deadman_disarmed", fired=dm["fired"])
                if dm["fired"]:
                    notes.append(f"the dead-man's switch fired at {dm['fired_at']} (outage exceeded "
                                 f"{cfg.max_outage_seconds:g}s)")
                elif (dm.get("record") or {}).get("checked_at"):
                    notes.append(f"the dead-man's switch reached its deadline at {dm['record']['checked_at']}, "
                                 f"found the tunnel healthy and left it alone")
            except (RemoteError, StepFailed) as exc:
                notes.append(f"could not disarm the dead-man's switch on {gw.host.name}: {exc}")
        # every acknowledged write must be on the replica: wait for catch-up, then read back this run's rows
        if d.writes:
            try:
                replica.catch_up(_run.inv, timeout=cfg.final_catch_up_timeout_seconds, secrets=_run.secrets)
            except (StepFailed, RemoteError, DbError) as exc:
                notes.append(f"final catch-up check: {exc}")
            try:
                observed = _observed_rows(d.tag, _run.inv)
                sets = write_sets(d.writes, observed, d.tag)
                seen = {m for _, m in observed}
            except Exception as exc:  # noqa: BLE001
                notes.append(f"could not read the replica to check writes: {exc}")
    blast: dict[str, Any] = {}
    if _run.blast is not None:
        try:
            blast = _run.blast.stop()
        except Exception as exc:  # noqa: BLE001 — an unreadable watch is reported, never hidden
            blast = {"ok": None, "error": str(exc)}
            notes.append(f"the blast-radius watch failed: {exc}")
    samples: list[dict] = []
    if _run.sampler is not None:
        try:
            _run.sampler.sample_now()
        except Exception:  # noqa: BLE001 — the final sample is a nicety
            pass
        samples = _run.sampler.stop()
    d.event("drill_ended")
    sites = [_run.inv.drill.fault_site, _run.inv.drill.peer_site] if _run.inv else []
    events = _derive_events(samples, [e.to_dict() for e in d.events], sites)
    metrics = compute_metrics(samples, events, d.writes, sets, seen)
    metrics.update(d.extra_metrics)
    failover_fault = next((e["t"] for e in events if e["name"] == "site_lost"), None)
    if failover_fault is not None and seen is not None:
        fault_t = next((e["t"] for e in events if e["name"] == "fault_injected"), failover_fault)
        metrics["failover"] = failover_figures(d.writes, seen, fault_t=fault_t, loss_t=failover_fault,
                                               errant=d.extra_metrics.get("errant_transactions"))
    objective_results = evaluate_objectives(metrics, cfg.objectives())
    extra = []
    switchover_lost = (metrics.get("failover") or {}).get("switchover_lost") or []
    if switchover_lost:
        extra.append(f"the failover's planned part lost {len(switchover_lost)} acknowledged write(s) (written on the "
                     f"promoted replica or after the return): {', '.join(switchover_lost[:5])}")
    if restore.get("failover") and not restore["failover"].get("ok"):
        extra.append("the failover did not return to the original topology: " + str(restore["failover"].get("error")))
    if restore.get("tunnel", "").startswith("FAILED") or str(restore.get("replica", "")).startswith("FAILED"):
        extra.append("the drill could not restore the tunnel/replica: " + "; ".join(notes))
    if _run.deadman and _run.deadman.get("fired"):
        extra.append("the outage outlived max_outage_seconds: the dead-man's switch had to restore the tunnel")
    if _run.blast is not None:
        extra.extend(_run.blast.reasons())
    v = verdict(journal, fault_injected=d.fault_injected, expect_outage=cfg.expect_outage,
                outage_detected=any(e["name"] == "outage_detected" for e in events),
                objective_results=objective_results, sets=sets, max_lost_writes=cfg.max_lost_writes,
                extra_reasons=extra,
                not_started=(_run.cause or "setup-error", _run.setup_error) if _run.setup_error else None,
                split_brain=split_brain_times(samples))
    if _run.lock and _run.inv is not None and _run.lock.get("state") in ("acquired", "taken-over"):
        try:
            safety.release_lock(gateway.helper(_run.inv, _run.inv.drill.fault_site), d.run_id)
            _run.lock["released"] = True
        except (RemoteError, StepFailed) as exc:
            notes.append(f"could not release the drill lock: {exc}")
    result = DrillResult(
        run_id=d.run_id, scenario=cfg.scenario, title=journal.get("experiment", {}).get("title"),
        controller={"node": socket.gethostname(), "user": getpass.getuser(), "pid": os.getpid(),
                    "drpoc_version": __version__},
        started=d.started, ended=utc_now_iso(),
        scope=_run.inv.scope() if _run.inv else {},
        pair=_run.inv.pair if _run.inv is not None and (_run.others or _run.inv.version > 1) else None,
        blast_radius=blast,
        roles=_roles(),
        objectives=cfg.objectives(),
        settings={"sample_interval_seconds": cfg.sample_interval_seconds,
                  "max_outage_seconds": cfg.max_outage_seconds, "expect_outage": cfg.expect_outage},
        timeline={"interval_seconds": cfg.sample_interval_seconds, "samples": samples,
                  "sample_errors": _run.sampler.errors if _run.sampler else 0},
        events=events,
        writes=({k: sets[k] for k in ("attempted", "acknowledged", "observed", "lost", "unexpected",
                                      "duplicated", "indeterminate")} if sets else
                {"attempted": len(d.writes), "acknowledged": sum(1 for w in d.writes if w.acked_t is not None),
                 "observed": None, "lost": [], "unexpected": [], "duplicated": []}),
        metrics=metrics, objective_results=objective_results, verdict=Verdict.from_dict(v),
        safety={"restore": restore, "deadman": _run.deadman, "lock": _run.lock, "notes": notes},
        feasibility=_run.feasibility or {},
        intent=_run.intent.file if _run.intent is not None else None,
        earlier_drills_died=_run.closed_died, parity=d.parity)
    journal["drpoc"] = result.to_dict()
    if not v["passed"] and journal.get("status") == "completed":
        journal["status"] = "failed"  # `chaos run` then exits 1: a drill that did not pass is not a success
    logger.info("drill verdict: %s%s", v["status"], (" — " + "; ".join(v["reasons"])) if v["reasons"] else "")
    if cfg.archive:
        _archive(journal, cfg, d)


def _roles() -> dict[str, Any]:
    """Which site and host played which part (a failover drill will record a swap; today's drills keep them)."""
    if _run.inv is None:
        return {}
    out = {"fault_site": _run.inv.drill.fault_site, "peer_site": _run.inv.drill.peer_site,
           "source": _run.inv.source.host, "replica": _run.inv.replica.host,
           "gateways": gateway.controls(_run.inv)}
    d = _run.drill
    if d is not None and d.has_event("promoted"):
        # the swap and its return, as the drill's own milestones say
        names = [e.name for e in d.events]
        out["failover"] = {"promoted": _run.inv.replica.host, "primary_during_failover": _run.inv.replica.host,
                           "returned_to": _run.inv.source.host if "switched_back" in names else None}
    return out


def _secret_values() -> list[str]:
    values: list[str] = []
    if _run.inv is not None:
        for db_ in (_run.inv.source, _run.inv.replica):
            try:
                values.append(resolve_secret(db_.password_ref, _run.secrets))
            except Exception:  # noqa: BLE001 — an unresolvable ref has no value to leak
                pass
    for scope in (_run.secrets or {}).values():
        if isinstance(scope, Mapping):
            values += [str(v) for v in scope.values() if v]
        elif scope:
            values.append(str(scope))
    return values


def _archive(journal: dict, cfg: DrillConfig, d: drill_state.Drill) -> None:
    try:
        # signed when DRPOC_SIGNING_KEY_FILE names an Ed25519 key (evidence.ledger)
        entry = archive_journal(journal, Path(cfg.archive_dir), secrets=_secret_values())
        journal["drpoc"]["archived_as"] = str(getattr(entry, "path", entry))
        logger.info("journal archived as %s", journal["drpoc"]["archived_as"])
    except Exception as exc:  # noqa: BLE001 — never lose the verdict because the archive failed
        logger.error("could not archive the journal in %s: %s", cfg.archive_dir, exc)
        return  # the intent stays open: `drpoc recover` or the next drill will say this drill left no outcome
    died.forget_progress(Path(cfg.archive_dir), d.run_id)
    if _run.deadman and _run.inv is not None:
        try:
            safety.forget_deadman_record(gateway.helper(_run.inv, _run.inv.drill.fault_site), d.run_id)
        except (RemoteError, StepFailed) as exc:
            logger.debug("could not remove the switch's record: %s", exc)
