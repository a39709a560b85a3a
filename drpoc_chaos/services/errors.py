"""One way for a service to say a step did not do what it must."""
from __future__ import annotations


class StepFailed(Exception):
    """A drill step did not achieve what it must — the tunnel is not back, the replica did not catch up, an argument
    makes no sense. The message names the host and says what to do; activities turn it into ActivityFailed."""


class Unreadable(StepFailed):
    """Output that cannot be read, or an argument naming something that does not exist (a status tool, say).
    Activities put their own name in front of it, as the place to look."""
