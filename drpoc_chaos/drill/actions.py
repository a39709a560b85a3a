"""Drill pacing actions."""
from __future__ import annotations

import time
from typing import Any, Mapping

from ..activity import activity, number
from ..core import recorder

__all__ = ["hold_outage"]


@activity
def hold_outage(seconds: float, configuration: Mapping | None = None,
                secrets: Mapping | None = None) -> dict[str, Any]:
    """Keep the fault in place until `seconds` have passed since it was injected (measured from the drill's
    `fault_injected` event, so detection and the writes during the outage count towards it). Without a running
    drill, simply waits `seconds`. Returns how long it actually waited."""
    seconds = number("hold_outage", "seconds", seconds, minimum=0)
    d = recorder.current()
    fault_t = next((e.t for e in d.events if e.name == "fault_injected"), None) if d else None
    wait = seconds if fault_t is None or d is None else max(0.0, fault_t + seconds - d.t())
    time.sleep(wait)
    return {"waited_seconds": round(wait, 3), "outage_held_seconds": seconds}
