"""The journal archive: redacted journals, one file per run, each recorded in the hash-chained ledger.

``archive_journal`` writes ``<archive_dir>/<UTC yyyymmddThhmmssZ>_<scenario>_<run_id8>.json`` (the time is when the
drill started) and appends a ledger line, under an exclusive ``flock`` on ``<archive_dir>/.ledger.lock`` so two
processes (a Prefect worker and a hand-run ``chaos run``, say) can archive at the same time. Archiving the same
journal twice is harmless: the second call finds the identical file and returns the existing entry.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from .ledger import (LOCK_NAME, append_entry, archive_files, ledger_head, read_ledger,
                     resolve_signing_key)
from .redact import redact

__all__ = ["ArchiveEntry", "archive_journal", "list_archive", "archive_lock", "parse_archive_name", "slugify",
           "parse_utc"]

_NAME_RE = re.compile(r"^(?P<ts>\d{8}T\d{6}Z)_(?P<scenario>.+)_(?P<run>[0-9a-zA-Z]{1,8})(?:-\d+)?\.json$")


@dataclass(frozen=True)
class ArchiveEntry:
    """One archived journal as the ledger records it (``seq`` is None for a file the ledger does not list)."""
    path: Path
    file: str
    sha256: str | None
    seq: int | None
    entry_hash: str | None
    recorded_at: str | None
    scenario: str | None
    run_id: str | None
    key_id: str | None = None
    signed: bool = False
    exists: bool = True


def slugify(text: str, max_len: int = 48) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if len(slug) > max_len:
        cut = slug.rfind("_", 0, max_len + 1)
        slug = slug[:cut] if cut > max_len // 2 else slug[:max_len]
    return slug.rstrip("_") or "experiment"


def parse_archive_name(name: str) -> dict[str, str] | None:
    """``{"timestamp", "scenario", "run_id8"}`` from an archive file name, or None."""
    m = _NAME_RE.match(name)
    if not m:
        return None
    return {"timestamp": m["ts"], "scenario": m["scenario"], "run_id8": m["run"]}


def parse_utc(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:  # Chaos Toolkit before 1.42 wrote naive UTC
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _identity(journal: dict[str, Any]) -> tuple[str, str, datetime]:
    drpoc = journal.get("drpoc") if isinstance(journal.get("drpoc"), dict) else {}
    experiment = journal.get("experiment") if isinstance(journal.get("experiment"), dict) else {}
    scenario = drpoc.get("scenario") if isinstance(drpoc.get("scenario"), str) else None
    if not scenario:
        title = experiment.get("title") if isinstance(experiment.get("title"), str) else ""
        scenario = title
    run_id = drpoc.get("run_id") if isinstance(drpoc.get("run_id"), str) else None
    run_id = re.sub(r"[^0-9a-zA-Z]", "", run_id or "") or uuid.uuid4().hex
    started = parse_utc(drpoc.get("started")) or parse_utc(journal.get("start")) or datetime.now(timezone.utc)
    return slugify(scenario or ""), run_id, started


def _load(journal: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    if isinstance(journal, dict):
        return journal
    path = Path(journal)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read journal {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); archive the run's original journal") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a Chaos Toolkit journal (top level is {type(data).__name__})")
    return data


@contextmanager
def archive_lock(archive_dir: Path) -> Iterator[None]:
    """Exclusive lock on the archive, across processes (``flock`` on ``.ledger.lock``)."""
    archive_dir = Path(archive_dir)
    archive_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(archive_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _entry_for(archive_dir: Path, name: str) -> dict[str, Any] | None:
    for _, entry, _ in read_ledger(archive_dir):
        if entry and entry.get("file") == name:
            return entry
    return None


def _to_entry(archive_dir: Path, name: str, led: dict[str, Any] | None, run_id: str | None = None,
              scenario: str | None = None) -> ArchiveEntry:
    parsed = parse_archive_name(name) or {}
    return ArchiveEntry(
        path=archive_dir / name, file=name,
        sha256=led.get("sha256") if led else None,
        seq=led.get("seq") if led else None,
        entry_hash=led.get("entry_hash") if led else None,
        recorded_at=led.get("recorded_at") if led else None,
        scenario=scenario or parsed.get("scenario"),
        run_id=run_id or parsed.get("run_id8"),
        key_id=led.get("key_id") if led else None,
        signed=bool(led and led.get("signature")),
        exists=(archive_dir / name).exists(),
    )


def archive_journal(journal: dict[str, Any] | str | os.PathLike[str], archive_dir: Path = Path("journal"),
                    secrets: Iterable[str] = (), signing_key: bytes | str | os.PathLike[str] | None = None,
                    ) -> ArchiveEntry:
    """Redact ``journal`` (a dict or a path to a journal file), write it into ``archive_dir`` and record it in the
    ledger. Returns the entry. ``signing_key`` is an Ed25519 private key (PEM/raw bytes or a file path); when None
    the file named by ``DRPOC_SIGNING_KEY_FILE`` is used if set, else the entry is not signed.

    Raises ValueError for an unreadable journal and LedgerError when the ledger or the key cannot be used."""
    data = _load(journal)
    key = resolve_signing_key(signing_key)  # before writing anything: a bad key fails early
    clean = redact(data, secrets)
    # Compact JSON (the C encoder: ~10x faster than indent=2 on big timelines); read it with `jq .`.
    payload = (json.dumps(clean, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    digest = hashlib.sha256(payload).hexdigest()
    scenario, run_id, started = _identity(data)
    stem = f"{started.strftime('%Y%m%dT%H%M%SZ')}_{scenario}_{run_id[:8]}"
    archive_dir = Path(archive_dir)

    with archive_lock(archive_dir):
        ledger_head(archive_dir)  # a torn or garbled last line stops us before anything is written
        name = f"{stem}.json"
        n = 1
        while (archive_dir / name).exists():
            existing = archive_dir / name
            if hashlib.sha256(existing.read_bytes()).hexdigest() == digest:
                led = _entry_for(archive_dir, name)
                if led is not None and led.get("sha256") == digest:
                    return _to_entry(archive_dir, name, led, run_id, scenario)
            n += 1
            name = f"{stem}-{n}.json"
        tmp = archive_dir / f".tmp-{os.getpid()}-{name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, archive_dir / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(archive_dir)
        led = append_entry(archive_dir, name, digest, key)
    return _to_entry(archive_dir, name, led, run_id, scenario)


def list_archive(archive_dir: Path = Path("journal")) -> list[ArchiveEntry]:
    """Every ledger entry in order (``exists`` False when its file is gone), then any journal file the ledger
    does not list (``seq`` None)."""
    archive_dir = Path(archive_dir)
    out: list[ArchiveEntry] = []
    seen: set[str] = set()
    for _, led, _ in read_ledger(archive_dir):
        if not led or not isinstance(led.get("file"), str):
            continue
        seen.add(led["file"])
        out.append(_to_entry(archive_dir, led["file"], led))
    for name in archive_files(archive_dir):
        if name not in seen:
            out.append(_to_entry(archive_dir, name, None))
    return out

