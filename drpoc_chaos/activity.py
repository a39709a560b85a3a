"""What every Chaos Toolkit probe and action shares: one way to fail, and argument checks.

Activities are thin adapters — arguments → a service call (services/) → a JSON-able result. The expected failures
(a host that cannot be reached, a refused login, sudo that wants a password, output that does not parse, a MySQL
error, a bad inventory, a step that did not do what it must, a bad argument) become `ActivityFailed` with the
sentence that names the host, the command and what to do — never a traceback. Anything else is a bug and is left to
surface as one. Secrets are never part of a message: remote.py and db.py keep them out.
"""
from __future__ import annotations

import collections.abc
import functools
import inspect
import logging
import math
import types
import typing
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

    wrapper.__signature__ = discoverable_signature(func)  # type: ignore[attr-defined]
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


def _portable(annotation: Any) -> Any:
    """The plain type `chaos discover` can name (chaoslib's portable_type_name knows bool, int, float, str, list, dict
    …, nothing generic): `X | None` → X, `dict[str, Any]`/`Mapping` → dict, `list[str]`/`Sequence` → list; a real
    union of several types stays as it is (shown as `object`)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _portable(members[0]) if len(members) == 1 else annotation
    origin = typing.get_origin(annotation) or annotation
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        return dict
    if origin in (list, tuple, collections.abc.Sequence):
        return list
    return annotation


def discoverable_signature(func: Callable[..., Any]) -> inspect.Signature:
    """`func`'s signature with its annotations evaluated (`from __future__ import annotations` leaves them strings,
    which chaoslib's discovery shows as `object`) and reduced to the plain types discovery can name."""
    sig = inspect.signature(func)
    hints = typing.get_type_hints(func)
    params = [p.replace(annotation=_portable(hints[p.name])) if p.name in hints else p for p in sig.parameters.values()]
    ret = _portable(hints["return"]) if "return" in hints else sig.return_annotation
    return sig.replace(parameters=params, return_annotation=ret)


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
