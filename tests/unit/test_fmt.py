"""core.fmt: one way to show a number, a run id and a time, wherever drpoc shows one."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from drpoc_chaos.core import fmt

AT = datetime(2026, 11, 29, 17, 0, 12, 345678, tzinfo=timezone.utc)


@pytest.mark.parametrize("value, text", [
    (None, "n/a"), (True, "n/a"), (False, "n/a"), ("fast", "n/a"), ([1], "n/a"), (float("nan"), "n/a"),
    (float("inf"), "n/a"), (0, "0"), (60, "60"), (1234567, "1234567"), (12.5, "12.5"), (12.0, "12"),
    (0.1 + 0.2, "0.3"), (12.8234567, "12.8235"), ("12.5", "12.5"), (" 7 ", "7"), (-3.25, "-3.25"),
])
def test_num(value, text):
    assert fmt.num(value) == text


def test_num_unit_and_places():
    assert fmt.num(12.5, "s") == "12.5 s" and fmt.num(None, "s") == "n/a"
    assert fmt.num(7, "days") == "7 days" and fmt.num(7.0, "days") == "7 days"
    assert fmt.num(22.7916, places=1) == "22.8" and fmt.num(3, places=2) == "3.00"
    assert fmt.seconds(12.34, places=1) == "12.3 s" and fmt.seconds(60) == "60 s" and fmt.seconds(None) == "n/a"


@pytest.mark.parametrize("value, text", [(None, "n/a"), (0, "0"), (120, "120"), (3.0, "3"), ("42", "42"),
                                         (True, "n/a"), (2.5, "2.5")])
def test_count(value, text):
    assert fmt.count(value) == text


@pytest.mark.parametrize("rate, text", [(None, "n/a"), (0, "0%"), (0.25, "25%"), (2 / 7, "29%"), (1.0, "100%"),
                                        (float("nan"), "n/a")])
def test_pct(rate, text):
    assert fmt.pct(rate) == text


@pytest.mark.parametrize("value, unit, text", [
    (None, "s", "n/a"), (True, "", "yes"), (False, "s", "no"), (12.5, "s", "12.5 s"), (3, "", "3"),
    ("IO thread", "s", "IO thread"), ({"p50": 1.5, "p95": None}, "", "p50 1.5, p95 n/a"), ({}, "", "n/a"),
    ([], "", "none"), ([41, 42], "", "41, 42"), (float("nan"), "s", "n/a"),
])
def test_value(value, unit, text):
    assert fmt.value(value, unit) == text


def test_ids():
    assert fmt.ids([]) == "none" and fmt.ids(()) == "none"
    assert fmt.ids([41, 42, 43]) == "41, 42, 43"
    assert fmt.ids(range(1, 31)) == ", ".join(str(i) for i in range(1, 21)) + ", … (30 in all)"
    assert fmt.ids(range(5), limit=2) == "0, 1, … (5 in all)"


def test_short_id():
    assert fmt.short_id("2b0c1a2f-9e8d-4c3b-a1f0-123456789abc") == "2b0c1a2f"
    assert fmt.short_id("abc") == "abc" and fmt.short_id(None) == "n/a" and fmt.short_id("") == "n/a"


def test_utc_times():
    assert fmt.utc(AT) == "2026-11-29 17:00:12 UTC"
    assert fmt.utc_short(AT) == "2026-11-29 17:00"
    assert fmt.utc_ms(AT) == "2026-11-29 17:00:12.345" and fmt.utc_ms(AT, date=False) == "17:00:12.345"
    assert fmt.utc_date(AT) == "2026-11-29"
    for f in (fmt.utc, fmt.utc_short, fmt.utc_ms, fmt.utc_date):
        assert f(None) == "n/a"


def test_utc_converts_other_zones_and_takes_naive_as_utc():
    paris = AT.astimezone(timezone(timedelta(hours=1)))
    assert fmt.utc(paris) == "2026-11-29 17:00:12 UTC"
    assert fmt.utc(AT.replace(tzinfo=None)) == "2026-11-29 17:00:12 UTC"  # not shifted by the machine's zone
    assert fmt.utc_date(datetime(2026, 11, 29, 23, 30, tzinfo=timezone(timedelta(hours=-2)))) == "2026-11-30"
