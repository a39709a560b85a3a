"""Drill pacing actions."""
from __future__ import annotations

import re
import time
from typing import Any, Mapping

from ..activity import activity, number
from ..core import recorder
from ..services.errors import StepFailed

__all__ = ["hold_outage"]


@activity
def hold_outage(seconds: float, since: str = "fault_injected", configuration: Mapping | None = None,
                secrets: Mapping | None = None) -> dict[str, Any]:
    """Keep the fault in place until `seconds` have passed since the drill's first `since` event (`fault_injected` by
    default, so detection and the writes during the outage count towards it; the failover drill holds from
    `promoted`, so the promoted replica serves writes that long whatever the detection took). Without a running
    drill, or before that event, simply waits `seconds`. Returns how long it actually waited."""
    seconds = number("hold_outage", "seconds", seconds, minimum=0)
    if not isinstance(since, str) or not re.fullmatch(r"[a-z_]{1,40}", since):
        raise StepFailed(f"hold_outage: since must be an event name (e.g. fault_injected, promoted), not "
                         f"{str(since)[:40]!r}")
    d = recorder.current()
    start_t = next((e.t for e in d.events if e.name == since), None) if d else None
    wait = seconds if start_t is None or d is None else max(0.0, start_t + seconds - d.t())
    time.sleep(wait)
    return {"waited_seconds": round(wait, 3), "outage_held_seconds": seconds, "since": since}
