"""Can this drill meet its objectives and timeouts on this replica? Pure arithmetic, checked before the fault.

A replica notices a silent VPN outage only when nothing has arrived for its net timeout N (`slave_net_timeout` /
`replica_net_timeout`): the drill writes a row just before the fault, so it shows `Connecting` after N. It shows
the connection error (what the shipped drills wait for) once its first reconnect attempt has timed out — MySQL and
MariaDB use the net timeout as the connect timeout — at 2N. It then retries every R seconds (connect retry), each
attempt through a dead tunnel hanging for N. Measured on the lab with MySQL's defaults (N 60, heartbeat 30, R 60;
docs/REAL_HOSTS.md): Connecting at 60 s, error at 121 s, tunnel back at 121 s, reconnected at 180.5 s, caught up at
185 s. With O the planned outage and I the timeline's resolution:

    detection (objective)          = N + I
    outage confirmed (detect wait) = 2N + I
    reconnect after tunnel up      ≤ N + R
    RPO (oldest unreplicated write)  ≥ max(2N + R, O)   and ≤ max(2N + I, O) + recovery + N + R

Refused (before anything is touched): an objective below what the replica can possibly do, or a timeout shorter
than the worst case of what it waits for — the drill would fail on arithmetic, not on the estate's resilience.
Warned (kept in the journal): an objective only the good cases meet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["ReplicaSettings", "Feasibility", "assess"]

MARGIN = 5.0  # SQL round trips, polling, catch-up of a few rows
RECOVERY_ESTIMATE = 15.0  # the seed's recovery order; one `ipsec up` through IKE retransmits takes up to ~14 s


@dataclass(frozen=True)
class ReplicaSettings:
    """What the replica is configured with (seconds); None when it could not be read."""

    net_timeout: float | None
    heartbeat_period: float | None
    connect_retry: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {"net_timeout": self.net_timeout, "heartbeat_period": self.heartbeat_period,
                "connect_retry": self.connect_retry}


@dataclass
class Feasibility:
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    figures: dict[str, float | None] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return not self.refusals

    def to_dict(self) -> dict[str, Any]:
        return {"feasible": self.feasible, "refusals": self.refusals, "warnings": self.warnings,
                "figures": self.figures}


def _num(config: Mapping[str, Any], key: str) -> float | None:
    value = config.get(key)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _flag(config: Mapping[str, Any], key: str) -> bool:
    return str(config.get(key, True)).strip().lower() not in ("false", "0", "no", "off")


def _g(x: float) -> str:
    return f"{x:g}"


def assess(settings: ReplicaSettings, config: Mapping[str, Any]) -> Feasibility:
    """Check the experiment's `config` (its configuration, with --var applied) against the replica's `settings`."""
    out = Feasibility()
    n, r, h = settings.net_timeout, settings.connect_retry, settings.heartbeat_period
    interval = _num(config, "sample_interval_seconds") or 0.5
    outage = _num(config, "outage_seconds") or 0.0
    expect_outage = _flag(config, "expect_outage")
    reconnects_alone = _flag(config, "replica_reconnects_by_itself")
    if n is None:
        out.warnings.append("the replica's net timeout could not be read: detection and RPO not checked")
        return out
    if h is not None and (h <= 0 or h >= n):
        out.warnings.append(f"heartbeat period {_g(h)}s is not below the net timeout {_g(n)}s: an idle source "
                            f"makes the replica drop and re-open its connection every {_g(n)}s")
    if not expect_outage:
        return out
    detection = n + interval
    error_seen = 2 * n + interval  # Connecting at N; the error once the first reconnect attempt timed out (2N)
    down_for = max(error_seen, outage)  # the tunnel stays down until the outage is confirmed and held
    out.figures.update(expected_detection_seconds=detection, outage_confirmed_seconds=error_seen,
                       planned_outage_seconds=down_for)
    objective = _num(config, "objective_detection_seconds")
    if objective is not None and objective < detection:
        out.refusals.append(
            f"objective_detection_seconds {_g(objective)} cannot be met: the replica notices a silent outage only "
            f"after its net timeout, {_g(n)}s (+ {_g(interval)}s timeline resolution) = {_g(detection)}s. Raise "
            f"the objective to ≥ {_g(detection)} or lower slave_net_timeout/replica_net_timeout")
    wait = _num(config, "detect_timeout_seconds")
    if wait is not None and wait < error_seen + MARGIN:
        out.refusals.append(
            f"detect_timeout_seconds {_g(wait)} is too short: the replica is Connecting after its net timeout "
            f"({_g(n)}s) and shows the connection error once its first reconnect attempt has timed out (another "
            f"{_g(n)}s): 2 × {_g(n)}s + {_g(interval)}s resolution + {_g(MARGIN)}s margin = "
            f"{_g(error_seen + MARGIN)}s. Raise it to ≥ {_g(error_seen + MARGIN)}")
    max_outage = _num(config, "max_outage_seconds")
    if max_outage is not None and max_outage < down_for + MARGIN:
        out.refusals.append(
            f"max_outage_seconds {_g(max_outage)} is shorter than the planned outage: the tunnel stays down until "
            f"the outage is confirmed ({_g(error_seen)}s) or held ({_g(outage)}s), + {_g(MARGIN)}s = "
            f"{_g(down_for + MARGIN)}s — the dead-man's switch would cut the drill short. Raise it to ≥ "
            f"{_g(down_for + MARGIN)}")
    if r is None:
        out.warnings.append("the replica's connect retry could not be read: reconnect and RPO not checked")
        return out
    if not reconnects_alone:
        return out  # the experiment restarts the replica itself (e.g. a replica stuck in Connecting)
    reconnect = n + r  # an attempt in flight may hang for the net timeout, then the replica sleeps its retry
    rpo_min = max(2 * n + r, outage)
    rpo_worst = down_for + RECOVERY_ESTIMATE + reconnect + MARGIN
    rto_worst = RECOVERY_ESTIMATE + reconnect + MARGIN
    out.figures.update(worst_reconnect_after_tunnel_up_seconds=reconnect, rpo_min_seconds=rpo_min,
                       rpo_worst_seconds=rpo_worst, rto_worst_seconds=rto_worst)
    wait = _num(config, "catch_up_timeout_seconds")
    if wait is not None and wait < reconnect + MARGIN:
        out.refusals.append(
            f"catch_up_timeout_seconds {_g(wait)} is shorter than the replica's worst reconnect once the tunnel is "
            f"back: a connect attempt in flight may hang for the net timeout ({_g(n)}s), then the replica waits its "
            f"connect retry ({_g(r)}s): {_g(reconnect)}s + {_g(MARGIN)}s margin. Raise it to ≥ "
            f"{_g(reconnect + MARGIN)} or lower MASTER_CONNECT_RETRY/SOURCE_CONNECT_RETRY")
    objective = _num(config, "objective_rpo_seconds")
    if objective is not None and objective < rpo_min:
        out.refusals.append(
            f"objective_rpo_seconds {_g(objective)} cannot be met: the oldest unreplicated write waits for the "
            f"outage to be confirmed (2 × net timeout {_g(n)}s) and for the replica's next connect attempt "
            f"(connect retry {_g(r)}s): at least {_g(rpo_min)}s. Raise the objective or lower those settings")
    elif objective is not None and objective < rpo_worst:
        out.warnings.append(
            f"objective_rpo_seconds {_g(objective)} holds only if recovery and reconnect go well: worst case "
            f"{_g(down_for)}s outage + ~{_g(RECOVERY_ESTIMATE)}s recovery + {_g(reconnect)}s reconnect + "
            f"{_g(MARGIN)}s = {_g(rpo_worst)}s")
    objective = _num(config, "objective_rto_seconds")
    if objective is not None and objective < rto_worst:
        out.warnings.append(
            f"objective_rto_seconds {_g(objective)} holds only if the replica reconnects early: worst case "
            f"~{_g(RECOVERY_ESTIMATE)}s recovery + {_g(reconnect)}s reconnect + {_g(MARGIN)}s = {_g(rto_worst)}s")
    return out
