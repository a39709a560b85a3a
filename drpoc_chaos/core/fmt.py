"""How numbers, run ids and times are shown to a person: one behaviour for each, used by the review (HTML and
Markdown), its charts, the review's console summary and the scheduler's artifacts. Pure: no I/O, no clock.

    num(v, unit)    a number: ints as they are, floats with ``:g`` (six significant digits), optional fixed
                    ``places``; None, bool, NaN, infinity and anything not a number → "n/a"; numeric strings
                    from a journal are numbers ("12.5" → "12.5")
    seconds(v)      num(v, "s")                       12.5 → "12.5 s"
    count(v)        a whole count                     3 → "3"; None → "n/a"
    pct(rate)       a 0..1 rate as a percentage       0.25 → "25%"; None → "n/a"
    value(v, unit)  any journal value: a number as num(), True/False as yes/no, a mapping as "k v, …",
                    a list as "a, b" ("none" when empty), None → "n/a", anything else as its text
    ids(items)      ids, at most ``limit`` of them   "41, 42, … (30 in all)"; "none" when empty
    short_id(id)    the first 8 characters of a run id (as in archive file names); None → "n/a"
    utc(dt)         "2026-11-29 17:00:00 UTC"         (naive datetimes are taken as UTC; None → "n/a")
    utc_short(dt)   "2026-11-29 17:00"                (for a column headed "(UTC)")
    utc_ms(dt)      "2026-11-29 17:00:12.345"         (events; ``date=False``: "17:00:12.345")
    utc_date(dt)    "2026-11-29"
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

__all__ = ["NA", "number", "num", "seconds", "count", "pct", "value", "ids", "short_id", "utc", "utc_short",
           "utc_ms", "utc_date"]

NA = "n/a"
SHORT_ID = 8


def number(v: Any) -> int | float | None:
    """``v`` as a finite number, or None: bool is not a number; a numeric string is."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return None


def num(v: Any, unit: str = "", *, places: int | None = None) -> str:
    n = number(v)
    if n is None:
        return NA
    if places is not None:
        text = f"{n:.{places}f}"
    else:
        text = str(n) if isinstance(n, int) else f"{n:g}"
    return f"{text} {unit}" if unit else text


def seconds(v: Any, *, places: int | None = None) -> str:
    return num(v, "s", places=places)


def count(v: Any) -> str:
    n = number(v)
    if n is None:
        return NA
    return str(int(n)) if float(n).is_integer() else f"{n:g}"


def pct(rate: Any) -> str:
    n = number(rate)
    return NA if n is None else f"{n * 100:.0f}%"


def value(v: Any, unit: str = "") -> str:
    if v is None:
        return NA
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return num(v, unit)
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {value(x)}" for k, x in v.items()) or NA
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v) or "none"
    return str(v)


def ids(items: Iterable[Any], limit: int = 20) -> str:
    items = list(items)
    if not items:
        return "none"
    text = ", ".join(str(i) for i in items[:limit])
    return text + (f", … ({len(items)} in all)" if len(items) > limit else "")


def short_id(run_id: Any) -> str:
    return NA if run_id is None or run_id == "" else str(run_id)[:SHORT_ID]


def _as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def utc(dt: datetime | None) -> str:
    return _as_utc(dt).strftime("%Y-%m-%d %H:%M:%S UTC") if dt else NA


def utc_short(dt: datetime | None) -> str:
    return _as_utc(dt).strftime("%Y-%m-%d %H:%M") if dt else NA


def utc_ms(dt: datetime | None, *, date: bool = True) -> str:
    if not dt:
        return NA
    return _as_utc(dt).strftime("%Y-%m-%d %H:%M:%S.%f" if date else "%H:%M:%S.%f")[:-3]


def utc_date(dt: datetime | None) -> str:
    return _as_utc(dt).strftime("%Y-%m-%d") if dt else NA
