"""Append-only, hash-chained ledger of archived journals, with optional Ed25519 signatures.

``<archive_dir>/ledger.jsonl`` holds one JSON object per line::

    {"seq": 1, "file": "20261129T170000Z_vpn_outage_2b0c1a2f.json",
     "sha256": "<sha256 of the journal file bytes>",
     "prev": "<entry_hash of the previous line, 64 zeros for the first>",
     "recorded_at": "2026-11-29T17:01:02.123456Z", "kind": "journal", "run_id": "<the drill's run id>",
     "key_id": "<optional>",
     "entry_hash": "<sha256 of the canonical JSON of every other field except signature>",
     "signature": "<optional: base64 Ed25519 signature over the ASCII hex entry_hash>"}

``kind`` is "journal" or "intent" (a drill's intent, written before its fault); lines written before intents
existed have neither ``kind`` nor ``run_id`` and are journals. ``entry_hash`` covers whatever fields a line has, so
those old lines stay valid.

Canonical JSON: keys sorted, separators ``(",", ":")``, UTF-8, no ASCII escaping. ``key_id`` is the first 16 hex
digits of the SHA-256 of the raw 32-byte public key. The signing key is read from a file (PEM, OpenSSH, raw 32 bytes,
hex or base64) or from the file named by ``DRPOC_SIGNING_KEY_FILE``; it is never logged or written anywhere.

``verify_archive`` recomputes everything and names each problem by file or by ledger line. It reads only regular
files (a FIFO, a directory or a link loop where a file should be is a finding, never a hang or a traceback).

Heads: when ``DRPOC_HEAD_FILE`` names a file (outside the archive), every append also appends
``{"seq", "entry_hash", "recorded_at", "archive"}`` to it; ``verify_archive(heads=read_heads(file, archive))``
then proves no recorded entry was cut or rewritten since.
"""
from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..core.clock import utc_now_iso

__all__ = [
    "LEDGER_NAME", "GENESIS", "SIGNING_KEY_ENV", "HEAD_FILE_ENV", "INTENT_SUFFIX", "KINDS", "LedgerError",
    "UnusableFile", "Finding", "VerifyReport",
    "canonical_json", "sha256_file", "entry_hash", "key_id", "open_regular", "parse_utc",
    "load_private_key", "load_public_key", "resolve_signing_key", "generate_keypair",
    "read_ledger", "ledger_head", "current_head", "append_entry", "verify_archive", "archive_files", "intent_files",
    "open_head_file", "record_head", "read_heads",
]

LEDGER_NAME = "ledger.jsonl"
LOCK_NAME = ".ledger.lock"
GENESIS = "0" * 64
SIGNING_KEY_ENV = "DRPOC_SIGNING_KEY_FILE"
HEAD_FILE_ENV = "DRPOC_HEAD_FILE"
INTENT_SUFFIX = ".intent.json"
KINDS = ("journal", "intent")
MAX_LINE = 64 * 1024  # a ledger line is a few hundred bytes: a longer one is garbage and is not read into memory
MAX_INTENT = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HASHED_FIELDS = ("seq", "file", "sha256", "prev", "recorded_at")
_REQUIRED_FIELDS = (*_HASHED_FIELDS, "entry_hash")


class LedgerError(Exception):
    """The ledger cannot be appended to (torn last line, unreadable file, bad key…); the message says what to do."""


# --------------------------------------------------------------------------------------------------- hashing
def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of every field except ``entry_hash`` and ``signature``."""
    body = {k: v for k, v in entry.items() if k not in ("entry_hash", "signature")}
    return hashlib.sha256(canonical_json(body)).hexdigest()


# --------------------------------------------------------------------------------------------------- keys
def _raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """First 16 hex digits of the SHA-256 of the raw public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return hashlib.sha256(_raw_public(public)).hexdigest()[:16]


def _decode_raw32(data: bytes) -> bytes | None:
    """32 raw bytes, or 64 hex digits, or base64 of 32 bytes."""
    if len(data) == 32:
        return data
    text = data.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def _read_key_material(source: bytes | str | os.PathLike[str]) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "the key bytes given"
    path = Path(source)
    try:
        return _read_small(path, MAX_INTENT), str(path)
    except UnusableFile as exc:
        raise LedgerError(f"cannot read key file {path}: it {exc.reason}") from None


def load_private_key(source: bytes | str | os.PathLike[str] | Ed25519PrivateKey) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM/OpenSSH/raw/hex/base64 file path or from such bytes."""
    if isinstance(source, Ed25519PrivateKey):
        return source
    data, where = _read_key_material(source)
    key: object  # whatever the material holds; checked to be Ed25519 below
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        elif b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            raw = _decode_raw32(data)
            if raw is None:
                raise ValueError("not PEM, OpenSSH, 32 raw bytes, hex or base64")
            key = Ed25519PrivateKey.from_private_bytes(raw)
    except (ValueError, TypeError) as exc:
        # The message never includes the key material.
        raise LedgerError(f"{where} is not a usable unencrypted Ed25519 private key ({type(exc).__name__}); "
                          "generate one with drpoc_chaos.evidence.ledger.generate_keypair()") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"{where} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(source: bytes | str | os.PathLike[str] | Ed25519PublicKey | Ed25519PrivateKey) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM/OpenSSH/raw/hex/base64 file or bytes (a private key is accepted too)."""
    if isinstance(source, Ed25519PublicKey):
        return source
    if isinstance(source, Ed25519PrivateKey):
        return source.public_key()
    data, where = _read_key_material(source)
    key: object  # whatever the material holds; checked to be Ed25519 below
    try:
        if b"PRIVATE KEY-----" in data:
            return load_private_key(data).public_key()
        if data.lstrip().startswith(b"ssh-ed25519 "):
            key = serialization.load_ssh_public_key(data.strip())
        elif b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            raw = _decode_raw32(data)
            if raw is None:
                raise ValueError("not PEM, OpenSSH, 32 raw bytes, hex or base64")
            key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError, LedgerError) as exc:
        raise LedgerError(f"{where} is not a usable Ed25519 public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise LedgerError(f"{where} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def resolve_signing_key(signing_key: bytes | str | os.PathLike[str] | Ed25519PrivateKey | None = None,
                        ) -> Ed25519PrivateKey | None:
    """The key to sign with: the one given, else the file named by ``DRPOC_SIGNING_KEY_FILE``, else None."""
    if signing_key is not None:
        return load_private_key(signing_key)
    path = os.environ.get(SIGNING_KEY_ENV)
    if path:
        return load_private_key(path)
    return None


def generate_keypair(private_path: str | os.PathLike[str], public_path: str | os.PathLike[str] | None = None) -> str:
    """Write a new Ed25519 key pair as PEM (private key mode 0600) and return its key id.

    The public key goes to ``public_path`` (default: the private path + ``.pub``)."""
    private_path = Path(private_path)
    public_path = Path(public_path) if public_path else private_path.with_name(private_path.name + ".pub")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_id(key)


# --------------------------------------------------------------------------------------------------- safe reading
class UnusableFile(OSError):
    """A path that cannot be read as a regular file (missing, a directory, a FIFO, a link loop, unreadable…).

    ``reason`` completes the sentence "<path> …"; ``missing`` is True when nothing is there at all."""

    def __init__(self, path: Path, reason: str, missing: bool = False) -> None:
        super().__init__(f"{path} {reason}")
        self.path = path
        self.reason = reason
        self.missing = missing


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "does not exist"
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read: permission denied"
    if exc.errno == errno.ENOTDIR:
        return "is inside something that is not a directory"
    return f"cannot be read: {exc.strerror or exc}"


def open_regular(path: Path) -> int:
    """A read-only descriptor on ``path``, only when it is a regular file.

    Checked with ``stat`` before opening (a FIFO is never opened, so never blocks us) and again with ``fstat`` after
    (in case it was swapped in between). Raises UnusableFile saying what the path is instead."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UnusableFile(path, _os_reason(exc), missing=exc.errno == errno.ENOENT) from None
    if not stat.S_ISREG(st.st_mode):
        raise UnusableFile(path, f"is {_file_type(st.st_mode)}, not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnusableFile(path, _os_reason(exc), missing=exc.errno == errno.ENOENT) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnusableFile(path, f"is {_file_type(st.st_mode)}, not a regular file")
    return fd


def sha256_file(path: Path) -> str:
    """SHA-256 of a regular file's bytes; UnusableFile (an OSError) for anything else."""
    h = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as fh:
        try:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        except OSError as exc:  # e.g. EIO on a bad disk
            raise UnusableFile(Path(path), _os_reason(exc)) from None
    return h.hexdigest()


def _read_small(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (UnusableFile otherwise)."""
    with os.fdopen(open_regular(path), "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise UnusableFile(Path(path), f"is larger than {limit} bytes")
    return data


def _lines(fh: Any) -> Iterator[tuple[int, bytes | None, int, bool]]:
    """``(line_number, bytes_without_newline or None when longer than MAX_LINE, length, ended_with_newline)``.

    Memory stays bounded whatever the file holds: an over-long line is skipped, not read whole."""
    n = 0
    while True:
        chunk = fh.readline(MAX_LINE + 1)
        if not chunk:
            return
        n += 1
        if len(chunk) > MAX_LINE and not chunk.endswith(b"\n"):
            size, ended = len(chunk), False
            while True:
                more = fh.readline(1 << 20)
                if not more:
                    break
                size += len(more)
                if more.endswith(b"\n"):
                    ended = True
                    size -= 1
                    break
            yield n, None, size, ended
            continue
        ended = chunk.endswith(b"\n")
        data = chunk[:-1] if ended else chunk
        yield n, data, len(data), ended


def _parse_line(data: bytes | None, size: int) -> tuple[dict[str, Any] | None, str, str | None]:
    """``(object or None, raw text for messages, why it is not an object)``."""
    if data is None:
        return None, f"<{size} bytes>", f"a line of {size} bytes, far too long to be a ledger entry"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raw = data.decode("utf-8", errors="replace")
        return None, raw, f"not UTF-8 text (byte {exc.start}): {raw[:80]!r}"
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None, text, f"not a JSON object: {text[:80]!r}"
    if not isinstance(obj, dict):
        return None, text, f"not a JSON object: {text[:80]!r}"
    return obj, text, None


@dataclass
class _Line:
    n: int
    entry: dict[str, Any] | None
    raw: str
    why: str | None  # why entry is None


def _scan(path: Path) -> tuple[list[_Line], bool]:
    """Every line of a JSON-lines file and whether its last line is torn (no newline). UnusableFile when it is not
    a readable regular file."""
    out: list[_Line] = []
    torn = False
    with os.fdopen(open_regular(path), "rb") as fh:
        try:
            for n, data, size, ended in _lines(fh):
                obj, raw, why = _parse_line(data, size)
                out.append(_Line(n, obj, raw, why))
                torn = not ended
        except OSError as exc:
            raise UnusableFile(Path(path), _os_reason(exc)) from None
    return out, torn


# --------------------------------------------------------------------------------------------------- ledger I/O
def _last_line(path: Path) -> bytes | None:
    """The last line of the ledger (without its newline), read from the end; None when empty."""
    with os.fdopen(open_regular(path), "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return None
        fh.seek(size - 1)
        if fh.read(1) != b"\n":
            raise LedgerError(f"{path} does not end with a newline (a torn write?); run `drpoc verify` "
                              "and repair the last line by hand before archiving more journals")
        end = size - 1  # offset of the final newline
        pos, buf = end, b""
        while pos > 0:
            step = min(4096, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf  # bytes [pos, end)
            idx = buf.rfind(b"\n")
            if idx >= 0:
                return buf[idx + 1:]
            if len(buf) > MAX_LINE:
                return buf  # not an entry: the caller says so
        return buf


def read_ledger(archive_dir: Path) -> list[tuple[int, dict[str, Any] | None, str]]:
    """Every line of the ledger as ``(line_number, parsed_entry_or_None, raw_text)``; [] when there is none.

    Raises UnusableFile (an OSError) when ``ledger.jsonl`` is a directory, a FIFO, a link loop or unreadable."""
    try:
        lines, _ = _scan(Path(archive_dir) / LEDGER_NAME)
    except UnusableFile as exc:
        if exc.missing:
            return []
        raise
    return [(ln.n, ln.entry, ln.raw) for ln in lines]


def ledger_head(archive_dir: Path) -> tuple[int, str] | None:
    """``(seq, entry_hash)`` of the last ledger line — record it elsewhere to detect truncation later."""
    path = Path(archive_dir) / LEDGER_NAME
    try:
        last = _last_line(path)
    except UnusableFile as exc:
        if exc.missing:
            return None
        raise LedgerError(f"{exc}: the ledger must be a regular file; run `drpoc verify {path.parent}` "
                          "and put the ledger back before archiving more journals") from None
    if last is None:
        return None
    try:
        obj = json.loads(last)
        return int(obj["seq"]), str(obj["entry_hash"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise LedgerError(f"the last line of {path} is not a ledger entry; run `drpoc verify {path.parent}`") from None


def current_head(archive_dir: Path) -> dict[str, Any] | None:
    """``{"seq", "entry_hash"}`` of the last ledger line, or None when nothing is archived yet.

    Store it anywhere outside the archive and hand it back to ``verify_archive(heads=[...])``."""
    head = ledger_head(archive_dir)
    return None if head is None else {"seq": head[0], "entry_hash": head[1]}


def append_entry(archive_dir: Path, file_name: str, sha256: str,
                 signing_key: Ed25519PrivateKey | None = None, *, kind: str = "journal",
                 run_id: str | None = None) -> dict[str, Any]:
    """Append one entry for ``file_name`` and return it. The caller holds the archive lock.

    ``kind`` ("journal" or "intent") and ``run_id`` are hashed like every other field."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    archive_dir = Path(archive_dir)
    path = archive_dir / LEDGER_NAME
    head = ledger_head(archive_dir)
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    entry: dict[str, Any] = {"seq": seq, "file": file_name, "sha256": sha256, "prev": prev,
                             "recorded_at": utc_now_iso(), "kind": kind}
    if run_id is not None:
        entry["run_id"] = run_id
    if signing_key is not None:
        entry["key_id"] = key_id(signing_key)
    entry["entry_hash"] = entry_hash(entry)
    if signing_key is not None:
        entry["signature"] = base64.b64encode(signing_key.sign(entry["entry_hash"].encode("ascii"))).decode("ascii")
    line = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return entry


def _is_archive_name(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")


def _regular_names(archive_dir: Path) -> list[str]:
    archive_dir = Path(archive_dir)
    try:
        names = os.listdir(archive_dir)
    except OSError:
        return []
    out = []
    for name in names:
        if not _is_archive_name(name):
            continue
        try:
            if stat.S_ISREG(os.stat(archive_dir / name).st_mode):
                out.append(name)
        except OSError:
            continue
    return sorted(out)


def archive_files(archive_dir: Path) -> list[str]:
    """Journal file names in the archive: regular ``*.json`` files at the top level, dot-files and intents
    (``*.intent.json``) excluded."""
    return [n for n in _regular_names(archive_dir) if not n.endswith(INTENT_SUFFIX)]


def intent_files(archive_dir: Path) -> list[str]:
    """Intent file names in the archive (``*.intent.json``, regular files at the top level)."""
    return [n for n in _regular_names(archive_dir) if n.endswith(INTENT_SUFFIX)]


# --------------------------------------------------------------------------------------------------- heads
def _archive_keys(archive_dir: Path) -> set[str]:
    """The ways a heads file may name this archive: its absolute path, and that path with links resolved."""
    keys = {os.path.abspath(archive_dir)}
    try:
        keys.add(str(Path(archive_dir).resolve()))
    except (OSError, RuntimeError):  # a link loop: the absolute path will do
        pass
    return keys


def open_head_file(archive_dir: Path) -> int | None:
    """An append descriptor on the file named by ``DRPOC_HEAD_FILE``, or None when it is not set.

    Opened before anything is archived so an unusable heads file stops us early, like a bad key."""
    name = os.environ.get(HEAD_FILE_ENV)
    if not name:
        return None
    path = Path(name)
    try:
        inside = Path(os.path.abspath(path)).resolve().is_relative_to(Path(archive_dir).resolve())
    except (OSError, RuntimeError):
        inside = False
    if inside:
        raise LedgerError(f"{HEAD_FILE_ENV}={path} is inside the archive {archive_dir}: whoever can delete the "
                          "archive could delete the heads too; point it at a file on another disk or machine")
    try:
        # O_NONBLOCK: a FIFO without a reader fails at once (ENXIO) instead of hanging the drill.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise LedgerError(f"cannot open {HEAD_FILE_ENV}={path} for appending: {exc.strerror or exc}; "
                          "fix the path or unset the variable") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise LedgerError(f"{HEAD_FILE_ENV}={path} is {_file_type(mode)}, not a regular file")
    return fd


def record_head(fd: int, archive_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append ``{"seq", "entry_hash", "recorded_at", "archive"}`` for ``entry`` to the heads file and fsync it."""
    head = {"seq": entry["seq"], "entry_hash": entry["entry_hash"], "recorded_at": utc_now_iso(),
            "archive": str(Path(archive_dir).resolve())}
    line = json.dumps(head, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    except OSError as exc:
        raise LedgerError(f"{entry['file']} was archived (ledger seq {entry['seq']}) but its head could not be "
                          f"appended to {HEAD_FILE_ENV} ({exc.strerror or exc}); append this line to it by hand: "
                          f"{line.strip()}") from None
    return head


def read_heads(path: str | os.PathLike[str], archive_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The heads recorded in a heads file (``DRPOC_HEAD_FILE``), each with its ``line`` number; only those of
    ``archive_dir`` when given. A line that is not a head comes back as ``{"line": n, "invalid": why}`` so
    ``verify_archive`` reports it. Raises LedgerError when the file cannot be read."""
    path = Path(path)
    try:
        lines, _ = _scan(path)
    except UnusableFile as exc:
        raise LedgerError(f"cannot use the heads file: {exc}") from None
    keys = _archive_keys(Path(archive_dir)) if archive_dir is not None else None
    out: list[dict[str, Any]] = []
    for ln in lines:
        if ln.entry is None:
            out.append({"line": ln.n, "invalid": ln.why or "not a JSON object"})
        elif keys is None or ln.entry.get("archive") in keys:
            out.append({**ln.entry, "line": ln.n})
    return out


def _head_problem(head: Any) -> str | None:
    if not isinstance(head, dict):
        return f"not a head: {str(head)[:80]!r}"
    if "invalid" in head:
        return str(head["invalid"])
    seq, eh = head.get("seq"), head.get("entry_hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return f"seq {seq!r} is not a positive integer"
    if not isinstance(eh, str) or not _HEX64.fullmatch(eh):
        return f"entry_hash {str(eh)[:80]!r} is not 64 hex digits"
    return None


# --------------------------------------------------------------------------------------------------- intents
def parse_utc(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO 8601 string (naive means UTC), or None."""
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


def _fmt_time(value: Any) -> str:
    dt = parse_utc(value)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else str(value)


def _read_intent(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = _read_small(path, MAX_INTENT)
    except UnusableFile as exc:
        return None, exc.reason
    try:
        obj = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None, "is not a JSON intent"
    if not isinstance(obj, dict):
        return None, "is not a JSON object"
    return obj, None


def _open_intent_lines(entries: Iterable[tuple[int, dict[str, Any] | None]]) -> list[tuple[int, dict[str, Any]]]:
    """Intent lines with no journal line of the same run_id after them, in ledger order."""
    pending: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for n, e in entries:
        if not e or not isinstance(e.get("run_id"), str) or not isinstance(e.get("file"), str):
            continue
        kind = e.get("kind", "journal")
        if kind == "intent":
            pending.setdefault(e["run_id"], []).append((n, e))
        elif kind == "journal":
            pending.pop(e["run_id"], None)  # the outcome, whatever its verdict ("died" included)
    return sorted((x for xs in pending.values() for x in xs), key=lambda x: x[0])


def _unfinished(archive_dir: Path, entries: Iterable[tuple[int, dict[str, Any] | None]],
                now: datetime | None) -> list[dict[str, Any]]:
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    out = []
    for _, e in _open_intent_lines(entries):
        content, why = _read_intent(Path(archive_dir) / e["file"])
        item: dict[str, Any] = dict(content) if content else {"run_id": e["run_id"], "error": f"the intent file {why}"}
        item["file"], item["seq"] = e["file"], e.get("seq")
        expires = parse_utc(item.get("expires"))
        item["overdue"] = bool(expires and now > expires)
        out.append(item)
    return out


# --------------------------------------------------------------------------------------------------- verify
@dataclass(frozen=True)
class Finding:
    """One integrity problem. ``subject`` is a file name in the archive, ``ledger.jsonl line N`` or the archive."""
    kind: str
    subject: str
    message: str
    line: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


@dataclass
class VerifyReport:
    archive_dir: str
    ok: bool = True
    entries: int = 0
    files: int = 0
    signed_entries: int = 0
    signatures_checked: bool = False
    key_id: str | None = None
    head: tuple[int, str] | None = None
    findings: list[Finding] = field(default_factory=list)
    # Per archived file (journals and intents): "verified", "modified", "missing", "not in ledger",
    # "ledger entry altered", "no ledger", "unreadable"
    file_status: dict[str, str] = field(default_factory=dict)
    intents: int = 0  # intent files in the archive
    heads_checked: int = 0  # recorded heads compared with the ledger (expected_head counts as one)
    empty: bool = False  # nothing archived (allowed only with allow_empty)
    notes: list[str] = field(default_factory=list)  # informational: drills in progress
    unfinished: list[dict[str, Any]] = field(default_factory=list)  # intents without an outcome

    def add(self, kind: str, subject: str, message: str, *, line: int | None = None,
            file: str | None = None) -> None:
        self.findings.append(Finding(kind, subject, message, line, file))
        self.ok = False

    def summary(self) -> str:
        def n(count: int, one: str, many: str) -> str:
            return f"{count} {one if count == 1 else many}"

        if self.ok:
            heads = (f"; {n(self.heads_checked, 'recorded head', 'recorded heads')} present"
                     if self.heads_checked else "")
            if self.empty:
                return f"OK: empty archive, nothing archived yet (allowed){heads}"
            sig = ""
            if self.signatures_checked:
                sig = f"; {n(self.signed_entries, 'signature', 'signatures')} valid for key {self.key_id}"
            elif self.signed_entries:
                sig = f"; {n(self.signed_entries, 'signed entry', 'signed entries')} not checked (no public key)"
            intents = f", {n(self.intents, 'intent', 'intents')}" if self.intents else ""
            head = f"; head seq {self.head[0]} {self.head[1]}" if self.head else ""
            return (f"OK: {n(self.entries, 'ledger entry', 'ledger entries')}, "
                    f"{n(self.files, 'journal file', 'journal files')}{intents}, chain intact{sig}{heads}{head}")
        return f"FAILED: {n(len(self.findings), 'finding', 'findings')} in {self.archive_dir}"


def _line_subject(n: int) -> str:
    return f"{LEDGER_NAME} line {n}"


def _ranges(numbers: list[int], limit: int = 8) -> str:
    """``1-3, 7, 9-10`` (the first ``limit`` runs, then "…")."""
    runs: list[list[int]] = []
    for x in numbers:
        if runs and x == runs[-1][1] + 1:
            runs[-1][1] = x
        else:
            runs.append([x, x])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit])
    return text + (", …" if len(runs) > limit else "")


def _scan_dir(archive_dir: Path) -> dict[str, str | None]:
    """Every ``*.json`` name at the top of the archive (dot-files excluded) → None for a regular file, else the
    reason it cannot be read. OSError when the directory cannot be listed."""
    out: dict[str, str | None] = {}
    for name in os.listdir(archive_dir):
        if not _is_archive_name(name):
            continue
        try:
            mode = os.stat(archive_dir / name).st_mode
        except OSError as exc:
            out[name] = _os_reason(exc)
            continue
        out[name] = None if stat.S_ISREG(mode) else f"is {_file_type(mode)}, not a regular file"
    return out


def verify_archive(archive_dir: str | os.PathLike[str],
                   public_key: bytes | str | os.PathLike[str] | Ed25519PublicKey | None = None,
                   *, expected_head: str | None = None, heads: list[dict[str, Any]] | None = None,
                   allow_empty: bool = False, now: datetime | None = None) -> VerifyReport:
    """Check every journal and intent against the ledger and the ledger against itself and any recorded head.

    Detects: a file modified (sha256 mismatch), deleted (listed but missing), inserted (in the archive but not in
    the ledger) or replaced by something that is not a regular file; a ledger line modified (entry_hash mismatch),
    unparseable, deleted, reordered or inserted (seq gap, broken ``prev`` chain, duplicate file); a ledger with
    some lines signed and some not; with ``public_key``: missing, invalid or foreign-key signatures. An empty or
    missing archive is a finding unless ``allow_empty``. A drill whose intent has no outcome journal is a finding
    once its ``expires`` time is past (``now``, default the current time), a note before.

    ``expected_head`` (an entry_hash recorded elsewhere) and ``heads`` (``{"seq", "entry_hash"}`` dicts, from
    ``read_heads`` or ``current_head``; each must be in the ledger at its seq) are checked whatever else is missing:
    they catch lines cut from the end, the newest entry rewritten, the whole archive deleted. Never raises for what
    it finds on disk; LedgerError only for an unusable ``public_key``.
    """
    archive_dir = Path(archive_dir)
    report = VerifyReport(archive_dir=str(archive_dir))
    pub: Ed25519PublicKey | None = load_public_key(public_key) if public_key is not None else None
    if pub is not None:
        report.signatures_checked = True
        report.key_id = key_id(pub)
    wellformed: list[tuple[int, dict[str, Any]]] = []
    try:
        mode: int | None = os.stat(archive_dir).st_mode
    except OSError as exc:
        mode = None
        if exc.errno == errno.ENOENT:
            if allow_empty:
                report.empty = True
            else:
                report.add("archive-missing", str(archive_dir), "archive directory does not exist: every journal "
                           "and the ledger are gone, or the path is wrong (pass --allow-empty if no drill has "
                           "been archived here yet)")
        else:
            report.add("archive-unreadable", str(archive_dir), f"the archive {_os_reason(exc)}")
    if mode is not None and not stat.S_ISDIR(mode):
        report.add("archive-not-a-directory", str(archive_dir), f"is {_file_type(mode)}, not an archive directory")
    elif mode is not None:
        try:
            names = _scan_dir(archive_dir)
        except OSError as exc:
            report.add("archive-unreadable", str(archive_dir), f"the archive cannot be listed: {_os_reason(exc)}")
        else:
            wellformed = _verify_contents(report, archive_dir, names, pub, allow_empty, now)
    _check_heads(report, wellformed, expected_head, heads)
    return report


def _verify_contents(report: VerifyReport, archive_dir: Path, names: dict[str, str | None],
                     pub: Ed25519PublicKey | None, allow_empty: bool,
                     now: datetime | None) -> list[tuple[int, dict[str, Any]]]:
    files = sorted(n for n, bad in names.items() if bad is None and not n.endswith(INTENT_SUFFIX))
    report.files = len(files)
    report.intents = sum(1 for n, bad in names.items() if bad is None and n.endswith(INTENT_SUFFIX))
    ledger_path = archive_dir / LEDGER_NAME
    try:
        lines, torn = _scan(ledger_path)
    except UnusableFile as exc:
        lines, torn = [], False
        if exc.missing:
            if not names:
                if allow_empty:
                    report.empty = True
                else:
                    report.add("archive-empty", str(archive_dir), "no ledger and no journal: nothing archived, or "
                               "everything was deleted (pass --allow-empty if no drill has been archived here yet)")
            else:
                report.add("ledger-missing", LEDGER_NAME, f"no ledger in {archive_dir} but {len(names)} "
                           "archived file(s): nothing can be verified")
        else:
            report.add("ledger-unusable", LEDGER_NAME, f"{exc.reason}: the ledger must be a regular file of JSON "
                       "lines; nothing can be verified without it")
        for name in names:
            report.file_status[name] = "no ledger"
        return []
    report.entries = len(lines)
    if not lines and not names:
        if allow_empty:
            report.empty = True
        else:
            report.add("archive-empty", str(archive_dir), "the ledger is empty and there is no journal: nothing "
                       "archived, or everything was deleted (pass --allow-empty if no drill has been archived "
                       "here yet)")
    if torn:
        report.add("ledger-torn", _line_subject(len(lines)), "last line has no newline (torn or edited write)",
                   line=len(lines))

    listed: dict[str, int] = {}
    wellformed: list[tuple[int, dict[str, Any]]] = []
    signed_lines: list[int] = []
    unsigned_lines: list[int] = []
    prev_hash: str | None = None  # entry_hash of the previous well-formed line
    prev_seq: int | None = None
    for ln in lines:
        n, entry = ln.n, ln.entry
        subject = _line_subject(n)
        if entry is None:
            report.add("ledger-unparseable", subject, ln.why or "not a JSON object", line=n)
            prev_hash, prev_seq = None, None
            continue
        missing = [k for k in _REQUIRED_FIELDS if k not in entry]
        if missing:
            report.add("ledger-malformed", subject, f"missing field(s) {', '.join(missing)}", line=n,
                       file=entry.get("file") if isinstance(entry.get("file"), str) else None)
            prev_hash, prev_seq = None, None
            continue
        wellformed.append((n, entry))
        name = entry["file"]
        seq = entry["seq"]
        fname = name if isinstance(name, str) else None
        recomputed = entry_hash(entry)
        altered = recomputed != entry["entry_hash"]
        if altered:
            report.add("ledger-line-modified", subject,
                       f"entry_hash does not match the line's content (seq {seq}, file {name}): the line was edited",
                       line=n, file=fname)
        # Sequence and chain, relative to the previous line so one deletion is reported once.
        if not isinstance(seq, int) or isinstance(seq, bool):
            report.add("ledger-seq", subject, f"seq {seq!r} is not an integer", line=n, file=fname)
        elif prev_seq is None and n == 1 and seq != 1:
            report.add("ledger-seq", subject, f"first line has seq {seq}, expected 1: "
                       f"{seq - 1 if seq > 1 else '?'} line(s) missing at the start", line=n, file=fname)
        elif prev_seq is not None and seq != prev_seq + 1:
            if seq > prev_seq + 1:
                detail = f"{seq - prev_seq - 1} line(s) missing here (deleted or moved)"
            else:
                detail = "lines reordered or inserted"
            report.add("ledger-seq", subject, f"seq {seq} follows seq {prev_seq}: {detail}", line=n, file=fname)
        if n == 1 and entry["prev"] != GENESIS and prev_hash is None:
            report.add("ledger-chain", subject, "first line's prev is not the genesis value (64 zeros): "
                       "earlier lines were removed", line=n, file=fname)
        elif prev_hash is not None and entry["prev"] != prev_hash:
            report.add("ledger-chain", subject, f"prev does not match the entry_hash of line {n - 1}: "
                       "chain broken (line deleted, inserted, reordered or edited)", line=n, file=fname)
        prev_hash = entry["entry_hash"]
        prev_seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None

        # Signature.
        sig = entry.get("signature")
        if sig:
            report.signed_entries += 1
            signed_lines.append(n)
        else:
            unsigned_lines.append(n)
        if pub is not None:
            if not sig:
                report.add("signature-missing", subject, f"entry for {name} is not signed", line=n, file=fname)
            else:
                if entry.get("key_id") not in (None, report.key_id):
                    report.add("signature-key", subject, f"signed with key {entry.get('key_id')}, "
                               f"not the given key {report.key_id}", line=n, file=fname)
                try:
                    pub.verify(base64.b64decode(sig, validate=True), str(entry["entry_hash"]).encode("ascii"))
                except (InvalidSignature, binascii.Error, ValueError, TypeError, UnicodeEncodeError):
                    report.add("signature-invalid", subject, f"signature does not verify for {name}",
                               line=n, file=fname)

        # The archived file itself.
        if not isinstance(name, str) or "/" in name or "\0" in name or not _is_archive_name(name):
            report.add("ledger-malformed", subject, f"file {name!r} is not a plain archive file name", line=n)
            continue
        kind = entry.get("kind", "journal")  # lines written before intents existed have no kind: journals
        is_intent = name.endswith(INTENT_SUFFIX)
        if kind not in KINDS:
            report.add("ledger-malformed", subject, f"unknown kind {kind!r} (expected journal or intent)",
                       line=n, file=name)
        elif (kind == "intent") != is_intent:
            report.add("ledger-malformed", subject, f"kind {kind} does not match the file name {name}",
                       line=n, file=name)
        what = "intent" if is_intent else "journal"
        if name in listed:
            report.add("ledger-duplicate", subject, f"{name} is already listed on line {listed[name]}",
                       line=n, file=name)
            continue
        listed[name] = n
        if name not in names:
            report.add(f"{what}-missing", name, f"listed on {subject} (seq {seq}) but missing from the archive",
                       line=n, file=name)
            report.file_status[name] = "missing"
            continue
        try:
            if names[name] is not None:
                raise UnusableFile(archive_dir / name, names[name] or "")
            actual = sha256_file(archive_dir / name)
        except UnusableFile as exc:
            report.add(f"{what}-unreadable", name, f"listed on {subject} (seq {seq}) but {exc.reason}",
                       line=n, file=name)
            report.file_status[name] = "unreadable"
            continue
        if actual != entry["sha256"]:
            report.add(f"{what}-modified", name, f"sha256 {actual[:16]}… differs from the ledger's "
                       f"{str(entry['sha256'])[:16]}… ({subject}): the {what} was modified", line=n, file=name)
            report.file_status[name] = "modified"
        elif altered:
            report.file_status[name] = "ledger entry altered"
        else:
            report.file_status[name] = "verified"

    for name, bad in sorted(names.items()):
        if name in listed:
            continue
        what = "intent" if name.endswith(INTENT_SUFFIX) else "journal"
        if bad is None:
            report.add(f"{what}-not-in-ledger", name, "in the archive but not in the ledger: inserted or "
                       "archived without the ledger", file=name)
            report.file_status[name] = "not in ledger"
        else:
            report.add("archive-odd-entry", name, f"{bad}, named like an archived file and not in the ledger",
                       file=name)
            report.file_status[name] = "unreadable"

    if signed_lines and unsigned_lines and pub is None:
        # Without the key an unsigned line next to signed ones is the only hint of a forged or re-hashed entry.
        report.add("signature-mixed", LEDGER_NAME,
                   f"{len(signed_lines)} line(s) signed but line(s) {_ranges(unsigned_lines)} not: an entry forged "
                   "or re-hashed without the key loses its signature; verify with --public-key (a ledger started "
                   "unsigned stays mixed: start a new archive when signing is switched on)")

    if lines and lines[-1].entry is not None:
        last = lines[-1].entry
        if "seq" in last and "entry_hash" in last:
            report.head = (last["seq"], last["entry_hash"])

    report.unfinished = _unfinished(archive_dir, wellformed, now)
    for item in report.unfinished:
        run8 = str(item.get("run_id", "?"))[:8]
        scenario = item.get("scenario", "?")
        started = _fmt_time(item.get("started", "?"))
        if item["overdue"]:
            report.add("drill-died", item["file"], f"drill {run8} ({scenario}) started {started} left no outcome: "
                       f"it died; run `drpoc recover` to archive what is known (it was due to end by "
                       f"{_fmt_time(item.get('expires'))})", line=listed.get(item["file"]), file=item["file"])
        elif "error" in item:  # the file's own finding fails the check; say what it means for the drill
            report.notes.append(f"drill {run8} has no outcome yet and {item['error']}: whether it is still "
                                "running cannot be told from the archive")
        else:
            report.notes.append(f"drill {run8} ({scenario}) started {started} is in progress: no outcome yet, "
                                f"due to end by {_fmt_time(item.get('expires'))}")
    return wellformed


def _check_heads(report: VerifyReport, wellformed: list[tuple[int, dict[str, Any]]],
                 expected_head: str | None, heads: list[dict[str, Any]] | None) -> None:
    last_seq = max((e["seq"] for _, e in wellformed if isinstance(e["seq"], int)), default=None)
    ends = f"ends at seq {last_seq}" if last_seq is not None else "has no entry"
    if expected_head is not None:
        report.heads_checked += 1
        if expected_head not in {e.get("entry_hash") for _, e in wellformed}:
            report.add("ledger-head", LEDGER_NAME, f"the recorded head {expected_head[:16]}… is not in the ledger "
                       f"(which {ends}): lines were cut from the end, the newest entry was rewritten, or the ledger "
                       "was deleted or replaced")
    if not heads:
        return
    by_seq: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for n, e in wellformed:
        if isinstance(e["seq"], int):
            by_seq.setdefault(e["seq"], []).append((n, e))
    gone: list[dict[str, Any]] = []
    rewritten: list[tuple[dict[str, Any], int, dict[str, Any]]] = []
    for head in heads:
        problem = _head_problem(head)
        if problem:
            where = f"heads line {head['line']}" if isinstance(head, dict) and "line" in head else "recorded head"
            report.add("heads-invalid", where, f"{problem}: not a recorded head (the heads file was damaged?)")
            continue
        report.heads_checked += 1
        at = by_seq.get(head["seq"])
        if not at:
            gone.append(head)
        elif not any(e.get("entry_hash") == head["entry_hash"] for _, e in at):
            rewritten.append((head, *at[0]))
    # One finding per kind of damage: a deleted ledger would otherwise give one line per drill ever run.
    if gone:
        newest = max(gone, key=lambda h: h["seq"])
        more = f" (and {len(gone) - 1} earlier recorded head(s))" if len(gone) > 1 else ""
        report.add("ledger-head", LEDGER_NAME, f"seq {newest['seq']} ({newest['entry_hash'][:16]}…), recorded "
                   f"{_fmt_time(newest.get('recorded_at', '?'))}{more}, is not in the ledger, which {ends}: lines "
                   "were cut from the end, or the ledger was deleted or replaced")
    if rewritten:
        head, n, e = min(rewritten, key=lambda r: r[0]["seq"])
        more = f" (and {len(rewritten) - 1} later recorded head(s))" if len(rewritten) > 1 else ""
        report.add("ledger-head", _line_subject(n), f"seq {head['seq']} is not the entry recorded "
                   f"{_fmt_time(head.get('recorded_at', '?'))}{more}: entry_hash {str(e.get('entry_hash'))[:16]}… "
                   f"instead of {head['entry_hash'][:16]}…; this line or the file it names was rewritten",
                   line=n, file=e.get("file") if isinstance(e.get("file"), str) else None)
