"""Campaign summaries (schema ``drpoc-campaign/1``): one scenario run across several replication pairs by the
Prefect flow ``dr-campaign``, which writes ``<archive>/campaigns/<started>_<campaign id first 8>.json``.

Pure reading, as tolerant as the journal reader: a field of the wrong type reads as missing (None / empty) and is
named in ``Campaign.problems``; an unknown schema is reported and the file is not interpreted; an unreadable or
corrupt file is a ``Problem``, never an exception. Every file is redacted (``redact``, the function the review
applies to journals) before any of it is read. The drill journals stay the evidence: a campaign file is not in the
ledger, it says which drills belong together and what the flow decided (a halt).
"""
from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

from .archive import parse_utc
from .model import Problem, expand_inputs
from .redact import redact

__all__ = ["CAMPAIGN_SCHEMA", "CAMPAIGN_DIR", "STATES", "NOT_RUN_HALTED", "Campaign", "CampaignOutcome",
           "read_campaign", "load_campaigns", "split_inputs", "looks_like_campaign"]

CAMPAIGN_SCHEMA = "drpoc-campaign/1"
CAMPAIGN_DIR = "campaigns"
NOT_RUN_HALTED = "not run: campaign halted"
STATES = ("passed", "failed", "error", NOT_RUN_HALTED)
_GLOB_CHARS = re.compile(r"[*?\[]")
_PEEK_BYTES = 4096


@dataclass
class CampaignOutcome:
    """One pair's part in a campaign. ``None`` means not in the file (or of the wrong type)."""
    pair: str | None = None
    order: int | None = None
    state: str | None = None
    run_id: str | None = None
    journal: str | None = None
    work_pool: str | None = None
    flow_run_id: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        return self.state in ("passed", "failed", "error")


@dataclass
class Campaign:
    path: str
    file: str
    schema: str | None = None
    campaign_id: str | None = None
    flow_run_id: str | None = None
    scenario: str | None = None
    inventory: str | None = None
    selection: str | None = None
    max_parallel: int | None = None
    started: datetime | None = None
    finished: datetime | None = None
    chosen: list[str] = field(default_factory=list)
    halted: bool | None = None
    halt_reason: str | None = None
    outcomes: list[CampaignOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what in the file could not be read as documented

    @property
    def counts(self) -> dict[str, int]:
        """outcome state -> number of pairs (in STATES order, then any other state as written)."""
        out = {s: 0 for s in STATES}
        for o in self.outcomes:
            key = o.state or "n/a"
            out[key] = out.get(key, 0) + 1
        return {k: v for k, v in out.items() if v}


# ------------------------------------------------------------------------------------------------ reading
def _str(data: Mapping[str, Any], key: str, problems: list[str], where: str = "") -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    problems.append(f"{where}{key} is a {type(value).__name__}, not a string: read as missing")
    return None


def _int(data: Mapping[str, Any], key: str, problems: list[str], where: str = "") -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    problems.append(f"{where}{key} is a {type(value).__name__}, not a whole number: read as missing")
    return None


def _time(data: Mapping[str, Any], key: str, problems: list[str], where: str = "") -> datetime | None:
    text = _str(data, key, problems, where)
    if text is None:
        return None
    when = parse_utc(text)
    if when is None:
        problems.append(f"{where}{key} is not an ISO 8601 time: read as missing")
    return when


def _strings(data: Mapping[str, Any], key: str, problems: list[str], where: str = "") -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{where}{key} is a {type(value).__name__}, not a list: read as empty")
        return []
    out = [v for v in value if isinstance(v, str)]
    if len(out) != len(value):
        problems.append(f"{where}{key} holds entries that are not strings: those left out")
    return out


def _outcome(item: Any, index: int, problems: list[str]) -> CampaignOutcome | None:
    where = f"outcomes[{index}]."
    if not isinstance(item, Mapping):
        problems.append(f"outcomes[{index}] is a {type(item).__name__}, not an object: left out")
        return None
    out = CampaignOutcome(pair=_str(item, "pair", problems, where), order=_int(item, "order", problems, where),
                          state=_str(item, "state", problems, where), run_id=_str(item, "run_id", problems, where),
                          journal=_str(item, "journal", problems, where),
                          work_pool=_str(item, "work_pool", problems, where),
                          flow_run_id=_str(item, "flow_run_id", problems, where),
                          started=_time(item, "started", problems, where),
                          finished=_time(item, "finished", problems, where),
                          reasons=_strings(item, "reasons", problems, where))
    if out.pair is None:
        problems.append(f"outcomes[{index}] names no pair")
    if out.state is not None and out.state not in STATES:
        problems.append(f"outcomes[{index}].state {out.state!r} is not one of {', '.join(STATES)}: shown as written")
    return out


def read_campaign(data: Any, path: str = "") -> tuple[Campaign | None, list[Problem]]:
    """A campaign file's (already parsed, already redacted) content → a Campaign, or None when it cannot be
    interpreted (not an object, unknown schema). Wrong-typed fields read as missing and become one Problem of
    kind ``missing-keys`` naming them all; nothing raises."""
    name = os.path.basename(path)
    if not isinstance(data, Mapping):
        return None, [Problem(path, f"not a campaign file: the top level is a {type(data).__name__}, not an object",
                              "input")]
    schema = data.get("schema")
    if schema != CAMPAIGN_SCHEMA:
        shown = schema if isinstance(schema, str) else None
        return None, [Problem(path, f"unknown campaign schema {shown!r} (this review reads {CAMPAIGN_SCHEMA!r}): "
                              "not interpreted; update drpoc-chaos to review it", "schema")]
    found: list[str] = []
    camp = Campaign(path=path, file=name, schema=CAMPAIGN_SCHEMA,
                    campaign_id=_str(data, "campaign_id", found), flow_run_id=_str(data, "flow_run_id", found),
                    scenario=_str(data, "scenario", found), inventory=_str(data, "inventory", found),
                    selection=_str(data, "selection", found), max_parallel=_int(data, "max_parallel", found),
                    started=_time(data, "started", found), finished=_time(data, "finished", found),
                    chosen=_strings(data, "chosen", found), halt_reason=_str(data, "halt_reason", found))
    halted = data.get("halted")
    if isinstance(halted, bool):
        camp.halted = halted
    elif halted is not None:
        found.append(f"halted is a {type(halted).__name__}, not true or false: read as unknown")
    outcomes = data.get("outcomes")
    if isinstance(outcomes, list):
        camp.outcomes = [o for o in (_outcome(item, i, found) for i, item in enumerate(outcomes)) if o is not None]
    elif outcomes is not None:
        found.append(f"outcomes is a {type(outcomes).__name__}, not a list: read as empty")
    missing = [k for k in ("campaign_id", "scenario", "started", "outcomes") if k not in data]
    if missing:
        found.append(f"lacks {', '.join(missing)}: shown as n/a")
    camp.outcomes.sort(key=lambda o: (o.order is None, o.order or 0))
    camp.problems = found
    problems = [Problem(path, "campaign file: " + "; ".join(found), "missing-keys")] if found else []
    return camp, problems


def _read_file(path: Path, secrets: Iterable[str]) -> tuple[Campaign | None, list[Problem]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [Problem(str(path), f"cannot read the campaign file: {exc.strerror or exc}", "input")]
    if not data.strip():
        return None, [Problem(str(path), "empty campaign file (0 bytes of JSON)", "input")]
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, [Problem(str(path), f"corrupt campaign file: not UTF-8 text (byte {exc.start})", "input")]
    except json.JSONDecodeError as exc:
        return None, [Problem(str(path), f"corrupt campaign file: {exc.msg} at line {exc.lineno} column "
                              f"{exc.colno}", "input")]
    except RecursionError:
        return None, [Problem(str(path), "corrupt campaign file: nested too deeply", "input")]
    try:
        return read_campaign(redact(obj, list(secrets)), str(path))
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop the review
        return None, [Problem(str(path), f"could not interpret this campaign file ({type(exc).__name__})", "input")]


def load_campaigns(files: Iterable[str | os.PathLike[str]], secrets: Iterable[str] = ()
                   ) -> tuple[list[Campaign], list[Problem]]:
    """Read campaign files (as named by ``split_inputs``): the campaigns, oldest first, and the problems met.
    Each file is redacted with ``secrets`` (and what it holds under secret-looking keys) before it is read."""
    secrets = [str(s) for s in secrets if s]
    campaigns: list[Campaign] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for raw in files:
        path = Path(raw)
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        camp, found = _read_file(path, secrets)
        problems.extend(Problem(p.source, redact(p.message, secrets), p.kind) for p in found)
        if camp is not None:
            campaigns.append(camp)
    campaigns.sort(key=lambda c: (c.started is None, c.started.timestamp() if c.started else 0.0, c.file))
    return campaigns, problems


# ------------------------------------------------------------------------------------------------ inputs
def looks_like_campaign(path: Path) -> bool:
    """A file the review should read as a campaign summary: it sits in a ``campaigns`` directory, or its first
    bytes declare a ``drpoc-campaign`` schema (a journal never does)."""
    if path.parent.name == CAMPAIGN_DIR:
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(_PEEK_BYTES)
    except OSError:
        return False
    return b'"drpoc-campaign/' in head and b'"campaign_id"' in head


def _campaign_dir_files(directory: Path) -> list[Path]:
    try:
        return sorted(c for c in directory.iterdir()
                      if c.suffix == ".json" and c.is_file() and not c.name.startswith("."))
    except OSError:
        return []


def split_inputs(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[str], list[Path]]:
    """The review's inputs → (inputs for ``load_journals``, campaign files). An archive directory brings its
    ``campaigns/*.json``; a directory named ``campaigns`` is read as campaigns only; a file (given, or matched by a
    glob) that is a campaign summary is taken out of the journals."""
    journals: list[str] = []
    campaigns: list[Path] = []
    for raw in paths:
        text = os.fspath(raw)
        p = Path(text)
        if p.is_dir():
            if p.name == CAMPAIGN_DIR:
                campaigns.extend(_campaign_dir_files(p))
                continue
            journals.append(text)
            sub = p / CAMPAIGN_DIR
            if sub.is_dir():
                campaigns.extend(_campaign_dir_files(sub))
        elif p.is_file():
            (campaigns.append(p) if looks_like_campaign(p) else journals.append(text))
        elif _GLOB_CHARS.search(text) and glob.glob(text, recursive=True):
            matches, _ = expand_inputs([text])
            found = [m for m in matches if looks_like_campaign(m)]
            if not found:
                journals.append(text)
                continue
            campaigns.extend(found)
            journals.extend(os.fspath(m) for m in matches if m not in found)
        else:
            journals.append(text)  # load_journals reports it
    return journals, campaigns
