"""Append-only, hash-chained ledger of archived journals, with optional Ed25519 signatures.

``<archive_dir>/ledger.jsonl`` holds one JSON object per line::

    {"seq": 1, "file": "20261129T170000Z_vpn_outage_2b0c1a2f.json",
     "sha256": "<sha256 of the journal file bytes>", "prev": "<entry_hash of the previous line, 64 zeros for the first>",
     "recorded_at": "2026-11-29T17:01:02.123456Z", "key_id": "<optional>",
     "entry_hash": "<sha256 of the canonical JSON of every other field except signature>",
     "signature": "<optional: base64 Ed25519 signature over the ASCII hex entry_hash>"}

Canonical JSON: keys sorted, separators ``(",", ":")``, UTF-8, no ASCII escaping. ``key_id`` is the first 16 hex
digits of the SHA-256 of the raw 32-byte public key. The signing key is read from a file (PEM, OpenSSH, raw 32 bytes,
hex or base64) or from the file named by ``DRPOC_SIGNING_KEY_FILE``; it is never logged or written anywhere.

``verify_archive`` recomputes everything and names each problem by file or by ledger line.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "LEDGER_NAME", "GENESIS", "SIGNING_KEY_ENV", "LedgerError", "Finding", "VerifyReport",
    "canonical_json", "sha256_file", "entry_hash", "key_id",
    "load_private_key", "load_public_key", "resolve_signing_key", "generate_keypair",
    "read_ledger", "ledger_head", "append_entry", "verify_archive", "archive_files",
]

LEDGER_NAME = "ledger.jsonl"
LOCK_NAME = ".ledger.lock"
GENESIS = "0" * 64
SIGNING_KEY_ENV = "DRPOC_SIGNING_KEY_FILE"
_HASHED_FIELDS = ("seq", "file", "sha256", "prev", "recorded_at")
_REQUIRED_FIELDS = (*_HASHED_FIELDS, "entry_hash")


class LedgerError(Exception):
    """The ledger cannot be appended to (torn last line, unreadable file, bad key…); the message says what to do."""


# --------------------------------------------------------------------------------------------------- hashing
def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of every field except ``entry_hash`` and ``signature``."""
    body = {k: v for k, v in entry.items() if k not in ("entry_hash", "signature")}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise LedgerError(f"cannot read key file {path}: {exc.strerror or exc}") from None


def load_private_key(source: bytes | str | os.PathLike[str] | Ed25519PrivateKey) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM/OpenSSH/raw/hex/base64 file path or from such bytes."""
    if isinstance(source, Ed25519PrivateKey):
        return source
    data, where = _read_key_material(source)
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


# --------------------------------------------------------------------------------------------------- ledger I/O
def _last_line(path: Path) -> bytes | None:
    """The last line of the ledger (without its newline), read from the end; None when empty."""
    with open(path, "rb") as fh:
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
        return buf


def read_ledger(archive_dir: Path) -> list[tuple[int, dict[str, Any] | None, str]]:
    """Every line of the ledger as ``(line_number, parsed_entry_or_None, raw_text)``; [] when there is none."""
    path = Path(archive_dir) / LEDGER_NAME
    out: list[tuple[int, dict[str, Any] | None, str]] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return out
    for n, line in enumerate(text.splitlines(), start=1):
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        out.append((n, obj if isinstance(obj, dict) else None, line))
    return out


def ledger_head(archive_dir: Path) -> tuple[int, str] | None:
    """``(seq, entry_hash)`` of the last ledger line — record it elsewhere to detect truncation later."""
    path = Path(archive_dir) / LEDGER_NAME
    if not path.exists():
        return None
    last = _last_line(path)
    if last is None:
        return None
    try:
        obj = json.loads(last)
        return int(obj["seq"]), str(obj["entry_hash"])
    except (ValueError, KeyError, TypeError):
        raise LedgerError(f"the last line of {path} is not a ledger entry; run `drpoc verify {path.parent}`") from None


def append_entry(archive_dir: Path, file_name: str, sha256: str,
                 signing_key: Ed25519PrivateKey | None = None) -> dict[str, Any]:
    """Append one entry for ``file_name`` and return it. The caller holds the archive lock."""
    archive_dir = Path(archive_dir)
    path = archive_dir / LEDGER_NAME
    head = ledger_head(archive_dir)
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    entry: dict[str, Any] = {"seq": seq, "file": file_name, "sha256": sha256, "prev": prev,
                             "recorded_at": utc_now_iso()}
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


def archive_files(archive_dir: Path) -> list[str]:
    """Journal file names in the archive: ``*.json`` at the top level, dot-files excluded."""
    archive_dir = Path(archive_dir)
    if not archive_dir.is_dir():
        return []
    return sorted(p.name for p in archive_dir.iterdir()
                  if p.suffix == ".json" and not p.name.startswith(".") and p.is_file())


# --------------------------------------------------------------------------------------------------- verify
@dataclass(frozen=True)
class Finding:
    """One integrity problem. ``subject`` is a journal file name or ``ledger.jsonl line N``."""
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
    # Per journal file: "verified", "modified", "missing", "not in ledger", "ledger entry altered"
    file_status: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, subject: str, message: str, *, line: int | None = None,
            file: str | None = None) -> None:
        self.findings.append(Finding(kind, subject, message, line, file))
        self.ok = False

    def summary(self) -> str:
        def n(count: int, one: str, many: str) -> str:
            return f"{count} {one if count == 1 else many}"

        if self.ok:
            sig = ""
            if self.signatures_checked:
                sig = f"; {n(self.signed_entries, 'signature', 'signatures')} valid for key {self.key_id}"
            elif self.signed_entries:
                sig = f"; {n(self.signed_entries, 'signed entry', 'signed entries')} not checked (no public key)"
            head = f"; head seq {self.head[0]} {self.head[1]}" if self.head else ""
            return (f"OK: {n(self.entries, 'ledger entry', 'ledger entries')}, "
                    f"{n(self.files, 'journal file', 'journal files')}, chain intact{sig}{head}")
        return f"FAILED: {n(len(self.findings), 'finding', 'findings')} in {self.archive_dir}"


def _line_subject(n: int) -> str:
    return f"{LEDGER_NAME} line {n}"


def verify_archive(archive_dir: str | os.PathLike[str],
                   public_key: bytes | str | os.PathLike[str] | Ed25519PublicKey | None = None,
                   *, expected_head: str | None = None) -> VerifyReport:
    """Check every journal against the ledger and the ledger against itself.

    Detects: a journal modified (sha256 mismatch), deleted (listed but missing), inserted (in the archive but not in
    the ledger); a ledger line modified (entry_hash mismatch), unparseable, deleted, reordered or inserted (seq gap,
    broken ``prev`` chain, duplicate file); with ``public_key``: missing, invalid or foreign-key signatures.
    ``expected_head`` (an entry_hash recorded elsewhere) also detects lines cut from the end of the ledger.
    """
    archive_dir = Path(archive_dir)
    report = VerifyReport(archive_dir=str(archive_dir))
    pub: Ed25519PublicKey | None = load_public_key(public_key) if public_key is not None else None
    if pub is not None:
        report.signatures_checked = True
        report.key_id = key_id(pub)
    if not archive_dir.is_dir():
        report.add("archive-missing", str(archive_dir), "archive directory does not exist")
        return report

    files = archive_files(archive_dir)
    report.files = len(files)
    file_set = set(files)
    ledger_path = archive_dir / LEDGER_NAME
    lines = read_ledger(archive_dir)
    report.entries = len(lines)
    if not ledger_path.exists():
        if files:
            report.add("ledger-missing", LEDGER_NAME,
                       f"no ledger in {archive_dir} but {len(files)} journal file(s): nothing can be verified")
        for name in files:
            report.file_status[name] = "no ledger"
        return report
    raw_bytes = ledger_path.read_bytes()
    if raw_bytes and not raw_bytes.endswith(b"\n"):
        report.add("ledger-torn", _line_subject(len(lines)), "last line has no newline (torn or edited write)",
                   line=len(lines))

    listed: dict[str, int] = {}
    prev_hash: str | None = None  # entry_hash of the previous well-formed line
    prev_seq: int | None = None
    sha_cache: dict[str, str] = {}
    for n, entry, raw in lines:
        subject = _line_subject(n)
        if entry is None:
            report.add("ledger-unparseable", subject, f"not a JSON object: {raw[:80]!r}", line=n)
            prev_hash, prev_seq = None, None
            continue
        missing = [k for k in _REQUIRED_FIELDS if k not in entry]
        if missing:
            report.add("ledger-malformed", subject, f"missing field(s) {', '.join(missing)}", line=n,
                       file=entry.get("file") if isinstance(entry.get("file"), str) else None)
            prev_hash, prev_seq = None, None
            continue
        name = entry["file"]
        seq = entry["seq"]
        recomputed = entry_hash(entry)
        altered = recomputed != entry["entry_hash"]
        if altered:
            report.add("ledger-line-modified", subject,
                       f"entry_hash does not match the line's content (seq {seq}, file {name}): the line was edited",
                       line=n, file=name)
        # Sequence and chain, relative to the previous line so one deletion is reported once.
        if not isinstance(seq, int) or isinstance(seq, bool):
            report.add("ledger-seq", subject, f"seq {seq!r} is not an integer", line=n, file=name)
        elif prev_seq is None and n == 1 and seq != 1:
            report.add("ledger-seq", subject, f"first line has seq {seq}, expected 1: "
                       f"{seq - 1 if seq > 1 else '?'} line(s) missing at the start", line=n, file=name)
        elif prev_seq is not None and seq != prev_seq + 1:
            if seq > prev_seq + 1:
                detail = f"{seq - prev_seq - 1} line(s) missing here (deleted or moved)"
            else:
                detail = "lines reordered or inserted"
            report.add("ledger-seq", subject, f"seq {seq} follows seq {prev_seq}: {detail}", line=n, file=name)
        if n == 1 and entry["prev"] != GENESIS and prev_hash is None:
            report.add("ledger-chain", subject, "first line's prev is not the genesis value (64 zeros): "
                       "earlier lines were removed", line=n, file=name)
        elif prev_hash is not None and entry["prev"] != prev_hash:
            report.add("ledger-chain", subject, f"prev does not match the entry_hash of line {n - 1}: "
                       "chain broken (line deleted, inserted, reordered or edited)", line=n, file=name)
        prev_hash = entry["entry_hash"]
        prev_seq = seq if isinstance(seq, int) else None

        # Signature.
        sig = entry.get("signature")
        if sig:
            report.signed_entries += 1
        if pub is not None:
            if not sig:
                report.add("signature-missing", subject, f"entry for {name} is not signed", line=n, file=name)
            else:
                if entry.get("key_id") not in (None, report.key_id):
                    report.add("signature-key", subject, f"signed with key {entry.get('key_id')}, "
                               f"not the given key {report.key_id}", line=n, file=name)
                try:
                    pub.verify(base64.b64decode(sig, validate=True), str(entry["entry_hash"]).encode("ascii"))
                except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
                    report.add("signature-invalid", subject, f"signature does not verify for {name}",
                               line=n, file=name)

        # The journal file itself.
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            report.add("ledger-malformed", subject, f"file {name!r} is not a plain archive file name", line=n)
            continue
        if name in listed:
            report.add("ledger-duplicate", subject, f"{name} is already listed on line {listed[name]}",
                       line=n, file=name)
            continue
        listed[name] = n
        if name not in file_set:
            report.add("journal-missing", name, f"listed on {subject} (seq {seq}) but missing from the archive",
                       line=n, file=name)
            report.file_status[name] = "missing"
            continue
        actual = sha_cache.get(name) or sha256_file(archive_dir / name)
        sha_cache[name] = actual
        if actual != entry["sha256"]:
            report.add("journal-modified", name, f"sha256 {actual[:16]}… differs from the ledger's "
                       f"{str(entry['sha256'])[:16]}… ({subject}): the journal was modified", line=n, file=name)
            report.file_status[name] = "modified"
        elif altered:
            report.file_status[name] = "ledger entry altered"
        else:
            report.file_status[name] = "verified"

    for name in files:
        if name not in listed:
            report.add("journal-not-in-ledger", name, "in the archive but not in the ledger: inserted or "
                       "archived without the ledger", file=name)
            report.file_status[name] = "not in ledger"

    if lines and lines[-1][1] is not None:
        last = lines[-1][1]
        if "seq" in last and "entry_hash" in last:
            report.head = (last["seq"], last["entry_hash"])
    if expected_head is not None:
        hashes = {e.get("entry_hash") for _, e, _ in lines if e}
        if expected_head not in hashes:
            report.add("ledger-head", LEDGER_NAME, f"the recorded head {expected_head[:16]}… is not in the ledger: "
                       "lines were cut from the end or the ledger was rewritten")
    return report

