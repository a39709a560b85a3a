"""The journal archive: redacted journals, one file per run, each recorded in the hash-chained ledger.

``archive_journal`` writes ``<archive_dir>/<UTC yyyymmddThhmmssZ>_<scenario>_<run_id8>.json`` (the time is when the
drill started) and appends a ledger line, under an exclusive ``flock`` on ``<archive_dir>/.ledger.lock`` so two
processes (a Prefect worker and a hand-run ``chaos run``, say) can archive at the same time. Archiving the same
journal twice is harmless: the second call finds the identical file and returns the existing entry.

``record_intent`` writes ``<UTC start>_<scenario>_<run_id8>.intent.json`` the same way before a drill's fault, so a
drill that dies (SIGKILL, power loss) is still visible: ``unfinished_intents`` lists intents with no outcome journal
of the same run_id recorded after them, and ``verify_archive`` reports them once they are overdue.

When ``DRPOC_HEAD_FILE`` names a file outside the archive, every new ledger line's head is appended to it (under the
same lock) so ``drpoc verify --heads FILE`` can later prove nothing was cut or rewritten.
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

from .ledger import (
    INTENT_SUFFIX,
    LOCK_NAME,
    _unfinished,
    append_entry,
    archive_files,
    current_head,
    intent_files,
    ledger_head,
    open_head_file,
    parse_utc,
    read_ledger,
    record_head,
    resolve_signing_key,
    sha256_file,
)
from .redact import redact

__all__ = ["ArchiveEntry", "archive_journal", "record_intent", "unfinished_intents", "current_head", "list_archive",
           "archive_lock", "parse_archive_name", "slugify", "parse_utc", "archive_files", "intent_files"]

_NAME_RE = re.compile(r"^(?P<ts>\d{8}T\d{6}Z)_(?P<scenario>.+)_(?P<run>[0-9a-zA-Z]{1,8})(?:-\d+)?"
                      r"(?P<intent>\.intent)?\.json$")


@dataclass(frozen=True)
class ArchiveEntry:
    """One archived journal (or intent) as the ledger records it (``seq`` is None for a file the ledger does not
    list)."""
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
    kind: str = "journal"  # "journal" or "intent" (a drill's record written before its fault)


def slugify(text: str, max_len: int = 48) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if len(slug) > max_len:
        cut = slug.rfind("_", 0, max_len + 1)
        slug = slug[:cut] if cut > max_len // 2 else slug[:max_len]
    return slug.rstrip("_") or "experiment"


def parse_archive_name(name: str) -> dict[str, str] | None:
    """``{"timestamp", "scenario", "run_id8", "kind"}`` from an archive file name, or None."""
    m = _NAME_RE.match(name)
    if not m:
        return None
    return {"timestamp": m["ts"], "scenario": m["scenario"], "run_id8": m["run"],
            "kind": "intent" if m["intent"] else "journal"}


def _dict(value: Any) -> dict[str, Any]:
    """`value` when it is a dict, else an empty one (journals are untrusted input)."""
    return value if isinstance(value, dict) else {}


def _identity(journal: dict[str, Any]) -> tuple[str, str, datetime]:
    drpoc = _dict(journal.get("drpoc"))
    experiment = _dict(journal.get("experiment"))
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
    kind = led.get("kind") if led and isinstance(led.get("kind"), str) else None
    return ArchiveEntry(
        path=archive_dir / name, file=name,
        sha256=led.get("sha256") if led else None,
        seq=led.get("seq") if led else None,
        entry_hash=led.get("entry_hash") if led else None,
        recorded_at=led.get("recorded_at") if led else None,
        scenario=scenario or parsed.get("scenario"),
        run_id=run_id or (led.get("run_id") if led and isinstance(led.get("run_id"), str) else None)
        or parsed.get("run_id8"),
        key_id=led.get("key_id") if led else None,
        signed=bool(led and led.get("signature")),
        exists=os.path.exists(archive_dir / name),
        kind=kind or ("intent" if name.endswith(INTENT_SUFFIX) else "journal"),
    )


def _same_bytes(path: Path, digest: str) -> bool:
    try:
        return sha256_file(path) == digest
    except OSError:  # not a regular file (a FIFO is never opened): the name is simply taken
        return False


def _store(archive_dir: Path, stem: str, suffix: str, payload: bytes, key: Any, kind: str,
           run_id: str | None) -> tuple[str, dict[str, Any]]:
    """Write ``payload`` as ``<stem><suffix>`` (``-2``, ``-3``… when taken by other content), append its ledger line
    and record the new head; the identical file already recorded is returned as is. Under the archive lock."""
    digest = hashlib.sha256(payload).hexdigest()
    archive_dir = Path(archive_dir)
    with archive_lock(archive_dir):
        ledger_head(archive_dir)  # a torn or garbled last line stops us before anything is written
        heads_fd = open_head_file(archive_dir)  # so does an unusable DRPOC_HEAD_FILE
        try:
            name = f"{stem}{suffix}"
            n = 1
            while os.path.lexists(archive_dir / name):
                if _same_bytes(archive_dir / name, digest):
                    led = _entry_for(archive_dir, name)
                    if led is not None and led.get("sha256") == digest:
                        return name, led
                n += 1
                name = f"{stem}-{n}{suffix}"
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
            led = append_entry(archive_dir, name, digest, key, kind=kind, run_id=run_id)
            if heads_fd is not None:
                record_head(heads_fd, archive_dir, led)
        finally:
            if heads_fd is not None:
                os.close(heads_fd)
    return name, led


def archive_journal(journal: dict[str, Any] | str | os.PathLike[str], archive_dir: Path = Path("journal"),
                    secrets: Iterable[str] = (), signing_key: bytes | str | os.PathLike[str] | None = None,
                    ) -> ArchiveEntry:
    """Redact ``journal`` (a dict or a path to a journal file), write it into ``archive_dir`` and record it in the
    ledger (``kind`` "journal", ``run_id`` from ``journal["drpoc"]["run_id"]`` when there is one: that closes the
    drill's intent). Returns the entry. ``signing_key`` is an Ed25519 private key (PEM/raw bytes or a file path);
    when None the file named by ``DRPOC_SIGNING_KEY_FILE`` is used if set, else the entry is not signed.

    Raises ValueError for an unreadable journal and LedgerError when the ledger, the key or ``DRPOC_HEAD_FILE``
    cannot be used."""
    data = _load(journal)
    key = resolve_signing_key(signing_key)  # before writing anything: a bad key fails early
    clean = redact(data, secrets)
    # Compact JSON (the C encoder: ~10x faster than indent=2 on big timelines); read it with `jq .`.
    payload = (json.dumps(clean, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    scenario, run_id, started = _identity(data)
    drpoc = _dict(data.get("drpoc"))
    full_run_id = drpoc.get("run_id") if isinstance(drpoc.get("run_id"), str) and drpoc.get("run_id") else None
    stem = f"{started.strftime('%Y%m%dT%H%M%SZ')}_{scenario}_{run_id[:8]}"
    archive_dir = Path(archive_dir)
    name, led = _store(archive_dir, stem, ".json", payload, key, "journal", full_run_id)
    return _to_entry(archive_dir, name, led, run_id, scenario)


_INTENT_REQUIRED = ("run_id", "scenario", "started", "expires")


def record_intent(archive_dir: Path, intent: dict[str, Any], secrets: Iterable[str] = (),
                  signing_key: bytes | str | os.PathLike[str] | None = None) -> ArchiveEntry:
    """Record that a drill is about to inject its fault, before it does, so a drill that dies is still visible.

    ``intent`` holds at least ``run_id``, ``scenario``, ``started`` and ``expires`` (ISO 8601 UTC: when a drill still
    running would certainly be over), plus anything else worth keeping (controller, scope, fault gateway,
    connection, max_outage_seconds). It is redacted like a journal, written as
    ``<UTC started>_<scenario>_<run_id8>.intent.json`` and recorded in the ledger with ``kind`` "intent" and the full
    ``run_id``; the journal archived later with the same run_id is its outcome.

    Raises ValueError for an incomplete intent and LedgerError when the ledger, the key or ``DRPOC_HEAD_FILE``
    cannot be used."""
    if not isinstance(intent, dict):
        raise ValueError(f"an intent is a dict, not {type(intent).__name__}")
    missing = [k for k in _INTENT_REQUIRED if not isinstance(v := intent.get(k), str) or not v.strip()]
    if missing:
        raise ValueError(f"intent needs non-empty string(s) {', '.join(missing)} "
                         "(run_id, scenario, started and expires as ISO 8601 UTC)")
    started = parse_utc(intent["started"])
    expires = parse_utc(intent["expires"])
    if started is None or expires is None:
        label = "started" if started is None else "expires"
        raise ValueError(f"intent {label} {intent[label]!r} is not an ISO 8601 time; give UTC such as "
                         "2026-11-29T17:00:00Z")
    if expires <= started:
        raise ValueError(f"intent expires ({intent['expires']}) is not after started ({intent['started']}): "
                         "expires is when a drill still running would certainly be over")
    key = resolve_signing_key(signing_key)
    clean = redact(intent, secrets)
    try:
        payload = (json.dumps(clean, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"intent is not JSON-serialisable ({exc}); give strings, numbers, lists and dicts") from None
    run_id = intent["run_id"]
    run8 = (re.sub(r"[^0-9a-zA-Z]", "", run_id) or uuid.uuid4().hex)[:8]
    scenario = slugify(intent["scenario"])
    stem = f"{started.strftime('%Y%m%dT%H%M%SZ')}_{scenario}_{run8}"
    archive_dir = Path(archive_dir)
    name, led = _store(archive_dir, stem, INTENT_SUFFIX, payload, key, "intent", run_id)
    return _to_entry(archive_dir, name, led, run_id, scenario)


def unfinished_intents(archive_dir: Path, now: datetime | None = None) -> list[dict[str, Any]]:
    """Intents with no journal of the same run_id recorded after them in the ledger, oldest first.

    Each is the intent file's content plus ``file``, ``seq`` and ``overdue`` (True once ``now``, default the current
    time, is past its ``expires``: the drill died). An intent whose file cannot be read comes back with ``run_id``
    from the ledger and ``error`` saying why (``drpoc verify`` reports the file). Raises UnusableFile (an OSError)
    when the ledger is not a readable regular file."""
    archive_dir = Path(archive_dir)
    return _unfinished(archive_dir, ((n, e) for n, e, _ in read_ledger(archive_dir)), now)


def list_archive(archive_dir: Path = Path("journal"), kind: str | None = None) -> list[ArchiveEntry]:
    """Every ledger entry in order (``exists`` False when its file is gone), then any journal or intent file the
    ledger does not list (``seq`` None). ``kind`` ("journal" or "intent") keeps only those; journals from ledgers
    written before intents existed have no kind in the ledger and are journals."""
    archive_dir = Path(archive_dir)
    out: list[ArchiveEntry] = []
    seen: set[str] = set()
    for _, led, _ in read_ledger(archive_dir):
        if not led or not isinstance(led.get("file"), str):
            continue
        seen.add(led["file"])
        out.append(_to_entry(archive_dir, led["file"], led))
    for name in archive_files(archive_dir) + intent_files(archive_dir):
        if name not in seen:
            out.append(_to_entry(archive_dir, name, None))
    return [e for e in out if kind is None or e.kind == kind]
