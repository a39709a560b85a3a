"""A campaign: one scenario drilled across chosen pairs of a fleet, a few at a time. Pure: which pairs, in what
order, which may start next, when to halt, and the summary the archive keeps (schema `drpoc-campaign/1`).

Selection follows AWS FIS's target selection modes: `all`, `count:N`, `percent:P` (of the fleet's pairs, rounded
up so any positive percentage drills at least one pair), or an explicit list (`list:a,b` or a list of names).
`count` and `percent` pick at random with a seed the summary records, so a campaign can be replayed exactly.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

SCHEMA = "drpoc-campaign/1"
NOT_RUN = "not run: campaign halted"
STATES = ("passed", "failed", "error", NOT_RUN)


class CampaignError(ValueError):
    """A campaign's parameters are wrong (the message names the parameter and the fix)."""


def parse_selection(selection: Any, pairs: Sequence[str]) -> tuple[str, Any]:
    """("all", None) | ("count", N) | ("percent", P) | ("list", [names]); refused with what to write."""
    if isinstance(selection, (list, tuple)):
        names = [str(x).strip() for x in selection]
        return "list", _known(names, pairs)
    text = str(selection or "all").strip()
    if text == "all":
        return "all", None
    kind, _, value = text.partition(":")
    if kind == "count":
        try:
            n = int(value)
        except ValueError:
            raise CampaignError(f"selection {text!r}: count needs a whole number, e.g. count:2") from None
        if n < 1:
            raise CampaignError(f"selection {text!r}: count must be at least 1")
        return "count", n
    if kind == "percent":
        try:
            p = float(value)
        except ValueError:
            raise CampaignError(f"selection {text!r}: percent needs a number, e.g. percent:50") from None
        if not 0 < p <= 100:
            raise CampaignError(f"selection {text!r}: percent must be above 0 and at most 100")
        return "percent", p
    if kind == "list":
        return "list", _known([x.strip() for x in value.split(",") if x.strip()], pairs)
    raise CampaignError(f"selection {text[:60]!r} is not all, count:N, percent:P or list:a,b (pairs: "
                        f"{', '.join(pairs)})")


def _known(names: list[str], pairs: Sequence[str]) -> list[str]:
    if not names:
        raise CampaignError("selection: the list of pairs is empty")
    unknown = [n for n in names if n not in pairs]
    if unknown:
        shown = ", ".join(repr(n[:64]) for n in unknown[:5])
        raise CampaignError(f"selection: no pair {shown} in the inventory; its pairs are {', '.join(pairs)}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CampaignError(f"selection: pair {', '.join(dup)} is listed twice")
    return names


def choose(selection: Any, pairs: Sequence[str], seed: int) -> list[str]:
    """The pairs to drill, in the order they are to start."""
    if not pairs:
        raise CampaignError("the inventory holds no pair")
    kind, value = parse_selection(selection, pairs)
    if kind == "all":
        return list(pairs)
    if kind == "list":
        return list(value)
    n = value if kind == "count" else math.ceil(len(pairs) * value / 100)
    if n > len(pairs):
        raise CampaignError(f"selection count:{n}: the inventory holds only {len(pairs)} pairs")
    return random.Random(seed).sample(list(pairs), n)


def next_to_start(queue: Sequence[str], running: Iterable[str], gateways: Mapping[str, Iterable[str]],
                  max_parallel: int) -> str | None:
    """The first queued pair that may start now: fewer than `max_parallel` drills running, and none of its
    gateways (`gateways[pair]`: what its drill acts on) held by a running drill. None: wait."""
    running = list(running)
    if len(running) >= max_parallel:
        return None
    busy = {g for p in running for g in gateways.get(p, ())}
    for pair in queue:
        if not busy.intersection(gateways.get(pair, ())):
            return pair
    return None


@dataclass
class Outcome:
    pair: str
    order: int
    state: str = NOT_RUN
    run_id: str | None = None
    journal: str | None = None
    work_pool: str | None = None
    flow_run_id: str | None = None
    started: str | None = None
    finished: str | None = None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def halt_reason(outcome: Outcome, halt_on_failure: bool) -> str | None:
    """Why the campaign stops after `outcome` (None: go on)."""
    if halt_on_failure and outcome.state in ("failed", "error"):
        first = outcome.reasons[0] if outcome.reasons else outcome.state
        return f"the drill of pair {outcome.pair} did not pass: {first}"
    return None


def summary(*, campaign_id: str, flow_run_id: str | None, scenario: str, inventory: str, selection: Any,
            seed: int, max_parallel: int, started: str, finished: str, chosen: Sequence[str],
            outcomes: Sequence[Outcome], halt: str | None) -> dict[str, Any]:
    """The campaign file the archive keeps (docs/EVIDENCE.md)."""
    return {"schema": SCHEMA, "campaign_id": campaign_id, "flow_run_id": flow_run_id, "scenario": scenario,
            "inventory": inventory, "selection": selection if isinstance(selection, str) else list(selection),
            "seed": seed, "max_parallel": max_parallel, "started": started, "finished": finished,
            "chosen": list(chosen), "halted": halt is not None, "halt_reason": halt,
            "outcomes": [o.to_dict() for o in sorted(outcomes, key=lambda o: o.order)],
            "passed": sum(1 for o in outcomes if o.state == "passed"),
            "not_passed": [o.pair for o in outcomes if o.state != "passed"]}
