"""Fixtures shared by the unit tests."""
from __future__ import annotations

import pytest

from drpoc_chaos import inventory as inv


@pytest.fixture
def clean_inventory_cache(monkeypatch):
    """No cached inventory and no DRPOC_INVENTORY from the caller's shell, before and after the test."""
    inv.clear_cache()
    monkeypatch.delenv("DRPOC_INVENTORY", raising=False)
    yield
    inv.clear_cache()
