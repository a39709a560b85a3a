"""One way for a service to say a step did not do what it must."""
from __future__ import annotations


class StepFailed(Exception):
    """A drill step did not achieve what it must — the tunnel is not back, the replica did not catch up, an argument
    makes no sense. The message names the host and says what to do; activities turn it into ActivityFailed."""
