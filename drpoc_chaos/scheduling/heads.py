"""The archive's ledger head anchored outside the archive, in Prefect Variables: after each drill the `dr-drill`
flow records `ledger_head(archive_dir)` (`record_ledger_head`); `drpoc schedule heads --out FILE` writes the recorded
heads as JSON lines for `drpoc verify ARCHIVE --heads FILE`, which then detects a ledger cut or rewritten behind them.

Variables (names: `head_variable_name(archive)`, e.g. `drpoc-ledger-head-journal-1a2b3c4d`):

    drpoc-ledger-head-<slug>        {"seq", "entry_hash", "recorded_at", "archive", "count", "page_size", "pages"}
                                    — the latest head; `count` heads recorded so far
    drpoc-ledger-head-<slug>-p<K>   {"archive", "heads": [[seq, entry_hash, recorded_at], …]} — head number i
                                    (0-based) is in page (i // page_size) % pages: a ring that keeps the last
                                    (pages - 1) * page_size to pages * page_size heads (481-520 by default)

A Prefect Variable holds at most 5000 characters, hence the pages. Prefect is imported only inside functions.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from ..core.clock import utc_now_iso
from .verdicts import slug

HEAD_VARIABLE_PREFIX = "drpoc-ledger-head-"
PAGE_SIZE = 40            # 40 × ~100 characters: under Prefect's 5000-character limit for a Variable's value
PAGES = 13                # keeps the last 481 to 520 heads


def archive_key(archive_dir: str | os.PathLike) -> str:
    """The archive as recorded: its absolute, resolved path."""
    return str(Path(archive_dir).expanduser().resolve())


def head_variable_name(archive_dir: str | os.PathLike) -> str:
    """`drpoc-ledger-head-<slug of the archive directory's name>-<8 hex of its absolute path>`: readable, and two
    archives named alike in different places do not share a variable."""
    key = archive_key(archive_dir)
    return f"{HEAD_VARIABLE_PREFIX}{slug(Path(key).name)[:60]}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _page_name(name: str, k: int) -> str:
    return f"{name}-p{k}"


def record_ledger_head(archive_dir: str | os.PathLike, *, recorded_at: str | None = None) -> dict[str, Any] | None:
    """Record the current head of the archive's ledger in Prefect Variables. Returns the recorded head
    {"seq", "entry_hash", "recorded_at", "archive"}, the latest one already recorded when the head has not moved,
    or None when the archive has no ledger yet. Raises LedgerError for a torn or garbled last ledger line."""
    from prefect.variables import Variable

    from ..evidence.ledger import ledger_head

    head = ledger_head(Path(archive_dir))
    if head is None:
        return None
    seq, entry_hash = head
    archive = archive_key(archive_dir)
    name = head_variable_name(archive_dir)
    found = Variable.get(name, default=None)
    main: dict[str, Any] = found if isinstance(found, dict) else {}
    if main.get("seq") == seq and main.get("entry_hash") == entry_hash:
        return {k: main.get(k) for k in ("seq", "entry_hash", "recorded_at", "archive")}
    rec = {"seq": seq, "entry_hash": entry_hash, "recorded_at": recorded_at or utc_now_iso(), "archive": archive}
    count = int(main.get("count") or 0)
    page_size, pages = int(main.get("page_size") or PAGE_SIZE), int(main.get("pages") or PAGES)
    k, idx = (count // page_size) % pages, count % page_size
    page = Variable.get(_page_name(name, k), default=None)
    heads = page.get("heads", []) if isinstance(page, dict) and idx else []     # idx 0: the ring slot is reused
    heads.append([seq, entry_hash, rec["recorded_at"]])
    Variable.set(_page_name(name, k), {"archive": archive, "heads": heads}, overwrite=True,
                 tags=["drpoc", "ledger-head"])
    Variable.set(name, {**rec, "count": count + 1, "page_size": page_size, "pages": pages}, overwrite=True,
                 tags=["drpoc", "ledger-head"])
    return rec


def _head_variables(client, archive_dir: str | os.PathLike | None) -> dict[str, Any]:
    """name -> value of the head variables of `archive_dir` (read by name), or of every archive (paged)."""
    if archive_dir is not None:
        name = head_variable_name(archive_dir)
        main = client.read_variable_by_name(name)
        if main is None or not isinstance(main.value, dict):
            return {}
        out: dict[str, Any] = {name: main.value}
        for k in range(int(main.value.get("pages") or PAGES)):
            page = client.read_variable_by_name(_page_name(name, k))
            if page is not None:
                out[page.name] = page.value
        return out
    from prefect.client.schemas.objects import Variable
    out, offset = {}, 0
    while True:                            # the server returns at most its default limit (200) at a time
        r = client.request("POST", "/variables/filter", json={
            "variables": {"name": {"like_": HEAD_VARIABLE_PREFIX}}, "offset": offset, "limit": 200})
        batch = Variable.model_validate_list(r.json())
        out.update({v.name: v.value for v in batch if v.name.startswith(HEAD_VARIABLE_PREFIX)})
        if len(batch) < 200:
            return out
        offset += len(batch)


def recorded_heads(archive_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The heads recorded for `archive_dir` (None: for every archive), oldest first, one per (archive, seq,
    entry_hash) — the earliest recording of each."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        by_name = _head_variables(client, archive_dir)
    mains = {n: v for n, v in by_name.items() if isinstance(v, dict) and "entry_hash" in v}
    out: dict[tuple, dict[str, Any]] = {}

    def add(archive: Any, seq: Any, entry_hash: Any, recorded_at: Any) -> None:
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(entry_hash, str):
            return
        key = (archive, seq, entry_hash)
        rec = {"seq": seq, "entry_hash": entry_hash, "recorded_at": recorded_at, "archive": archive}
        if key not in out or str(recorded_at) < str(out[key]["recorded_at"]):
            out[key] = rec

    for name, main in mains.items():
        archive = main.get("archive")
        add(archive, main.get("seq"), main.get("entry_hash"), main.get("recorded_at"))
        for k in range(int(main.get("pages") or PAGES)):
            page = by_name.get(_page_name(name, k))
            if isinstance(page, dict):
                for h in page.get("heads") or []:
                    if isinstance(h, list) and len(h) == 3:
                        add(page.get("archive") or archive, *h)
    return sorted(out.values(), key=lambda r: (str(r["archive"]), str(r["recorded_at"]), r["seq"]))


def heads_jsonl(heads: Iterable[dict[str, Any]]) -> str:
    """One JSON object per line: {"seq", "entry_hash", "recorded_at", "archive"}."""
    return "".join(json.dumps({k: h[k] for k in ("seq", "entry_hash", "recorded_at", "archive")},
                              sort_keys=True) + "\n" for h in heads)


def write_heads_file(path: str | os.PathLike, archive_dir: str | os.PathLike | None) -> list[dict[str, Any]]:
    """Write the recorded heads of `archive_dir` (None: all archives) to `path` as JSON lines; returns them."""
    heads = recorded_heads(archive_dir)
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_text(heads_jsonl(heads), encoding="utf-8")
    os.replace(tmp, p)
    return heads
