"""Chaos Toolkit probe: the chosen tables hold the same data on source and replica (adapter over services.parity)."""
from __future__ import annotations

import logging
from typing import Mapping

from ..activity import activity
from .actions import compare_tables, wanted

__all__ = ["tables_match"]

logger = logging.getLogger("chaostoolkit")


@activity
def tables_match(tables: str = "", exclude: str | None = None, workers: int = 4, max_rounds: int = 5,
                 wait_timeout: float = 30.0, configuration: Mapping | None = None,
                 secrets: Mapping | None = None) -> bool:
    """True when every chosen table holds the same rows on source and replica (docs/PARITY.md), compared at the
    same replication position so live writes are never a difference. `tables`: patterns `schema.table` (shell
    wildcards, comma-separated or a list; `*` = every non-system schema); empty = nothing to check (True, the
    experiments' default). The per-table verdicts go to the journal's `drpoc.parity`. Use with `tolerance: true`.
    A table that cannot be compared (replica not reaching the position, rows still changing after `max_rounds`)
    makes it False too: parity was not shown."""
    if not wanted(tables):
        logger.info("tables_match: no tables configured (parity_tables empty): skipped")
        return True
    result = compare_tables(tables, exclude, workers, max_rounds, wait_timeout, configuration, secrets)
    return bool(result["verdict"] == "equal")
