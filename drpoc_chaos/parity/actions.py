"""Chaos Toolkit action: compare the chosen tables of source and replica and return the full result (adapter over
services.parity)."""
from __future__ import annotations

from typing import Any, Mapping

from ..activity import activity, number
from ..core.parity import ParityError, Selection
from ..services import parity
from ..services.context import inventory
from ..services.errors import StepFailed

__all__ = ["compare_tables"]


def wanted(tables: Any) -> bool:
    if tables is None:
        return False
    if isinstance(tables, str):
        return bool(tables.strip())
    return any(str(t).strip() for t in tables)


def selection(tables: Any, exclude: Any, func: str) -> Selection:
    include = None if isinstance(tables, str) and tables.strip() == "*" else tables
    try:
        return Selection.parse(include, exclude)
    except ParityError as exc:
        raise StepFailed(f"{func}: {exc}") from None


@activity
def compare_tables(tables: str = "*", exclude: str | None = None, workers: int = 4, max_rounds: int = 5,
                   wait_timeout: float = 30.0, configuration: Mapping | None = None,
                   secrets: Mapping | None = None) -> dict[str, Any]:
    """Compare the chosen tables (`schema.table` patterns; `*` = every non-system schema) on source and replica.
    Returns {"verdict": equal|differs|incomplete, "exit_code", "mode", "tables": [{"table", "status", "rows",
    "counts", "missing", "extra", "changed", …}], "rows", "seconds", …} — keys of differing rows, never values."""
    options = parity.Options(
        selection=selection(tables, exclude, "compare_tables"),
        workers=int(number("compare_tables", "workers", workers, minimum=1, integer=True)),
        max_rounds=int(number("compare_tables", "max_rounds", max_rounds, minimum=1, integer=True)),
        wait_timeout=number("compare_tables", "wait_timeout", wait_timeout, minimum=0),
        max_lag=None)  # a drill's after-check runs right after catch-up: the lag was just checked
    try:
        return parity.compare_tables(inventory(configuration), secrets, options)
    except ParityError as exc:
        raise StepFailed(f"compare_tables: {exc}") from None
