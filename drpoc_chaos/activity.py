"""What every Chaos Toolkit probe and action shares: one way to fail, and argument checks.

Activities are thin adapters — arguments → a service call (services/) → a JSON-able result. The expected failures
(a host that cannot be reached, a refused login, sudo that wants a password, output that does not parse, a MySQL
error, a bad inventory, a step that did not do what it must, a bad argument) become `ActivityFailed` with the
sentence that names the host, the command and what to do — never a traceback. Anything else is a bug and is left to
surface as one. Secrets are never part of a message: remote.py and db.py keep them out.
"""
from __future__ import annotations

import functools
import logging
import math
from typing import Any, Callable, TypeVar

from chaoslib.exceptions import ActivityFailed, InterruptExecution

from . import db, remote
from .core.identifiers import IdentifierError, check_name, split_table
from .inventory import InventoryError
from .replication.status import ReplicaStatusParseError
from .services.errors import StepFailed, Unreadable
from .vpn.status import VpnStatusParseError

logger = logging.getLogger("chaostoolkit")
F = TypeVar("F", bound=Callable[..., Any])

_EXPECTED = (remote.RemoteError, db.DbError, InventoryError, StepFailed, IdentifierError)
_PARSE_ERRORS = (VpnStatusParseError, ReplicaStatusParseError)


def activity(func: F) -> F:
    """Turn the expected failures of an activity into ActivityFailed with an actionable sentence."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ActivityFailed, InterruptExecution):
            raise
        except (Unreadable, *_PARSE_ERRORS) as exc:
            raise ActivityFailed(f"{func.__name__}: {exc}") from None
        except _EXPECTED as exc:
            raise ActivityFailed(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def connection_arg(func: str, value: Any) -> str | None:
    """An optional connection-name argument: it reaches the gateway's command line, so it is checked strictly."""
    if value is None:
        return None
    try:
        return check_name(value, f"{func}: connection")
    except IdentifierError as exc:
        raise StepFailed(f"{exc} (fix the experiment or the --var)") from None


def table_arg(func: str, name: str, value: Any) -> str:
    """A `schema.table` argument: it reaches SQL, so it is checked strictly (the service quotes it too)."""
    try:
        split_table(value, f"{func}: {name}")
    except IdentifierError as exc:
        raise StepFailed(f"{exc} (fix the experiment or the --var)") from None
    return str(value)


def number(func: str, name: str, value: Any, *, minimum: float | None = None, integer: bool = False) -> float:
    """An argument that must be a (finite) number, from an experiment file or a `--var`: a clear error otherwise."""
    try:
        out = int(value) if integer and not isinstance(value, float) else float(value)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise StepFailed(f"{func}: {name} must be {kind}, not {value!r}") from None
    if isinstance(out, float) and not math.isfinite(out):
        raise StepFailed(f"{func}: {name} must be a finite number, not {value!r}")
    if minimum is not None and out < minimum:
        raise StepFailed(f"{func}: {name} must be at least {minimum:g}" if minimum else
                         f"{func}: {name} must not be negative")
    return out
