"""Remove secret values from a JSON-like structure before it is archived or shown in a review.

Rules, applied everywhere in the structure (dict keys and values, lists, tuples):

* every occurrence of a known secret value (at least 4 characters) inside any string is replaced by ``***``, in
  each form it may take in a log or an error message: raw, URL-encoded (``quote`` and ``quote_plus``, upper or
  lower case hex), JSON-escaped (once or twice), repr-escaped, hex, and base64 (standard or URL-safe, with or
  without padding). Base64 is also found by decoding: every base64-looking token (``Authorization: Basic …``,
  a ``user:secret`` pair) is decoded and, when the decoded text holds a known secret, the whole token goes;
* a key that looks secret has its value replaced by ``***`` (see ``is_secret_key``: password, passwd, pwd, pw,
  pass, passphrase, psk, secret, token, api_key/apikey, authorization, auth, credentials, private_key,
  access_key, cookie…, in any case, with ``_``/``-``/``.`` separators or camelCase, with prefixes such as
  ``db_pw`` or ``mysql_password``). This covers Chaos Toolkit's ``configuration`` (where ``--var`` values land)
  and ``secrets`` blocks. When the value is a container, its structure is kept and every leaf is replaced;
* the only value kept under a secret-looking key is a *reference* that points at a secret by name: ``{"env":
  NAME}``, ``{"file": PATH}``, ``{"secret": NAME}``, ``{"vault": PATH}`` or Chaos Toolkit's ``{"type": "env",
  "key": NAME}`` — and only when every name is a plausible variable name or path (``is_plausible_name``), never
  a credential-looking string (``{"key": "AKIA…"}``, ``{"env": "hunter2!"}`` are hidden) — and a provider's
  ``secrets: [scope, …]``, a list of Chaos Toolkit scope names;
* free text is also scrubbed of the usual ways a secret is written next to its name, known or not:
  ``password=…``, ``token: …``, ``Authorization: Basic …`` / ``Bearer …``, ``mysql -p…``, ``--password …``,
  ``IDENTIFIED BY '…'``, ``scheme://user:secret@host``.

Values found under secret-looking keys are themselves added to the known secrets, so a password that also appears
inside a logged command line is scrubbed there too. The input is never modified; a new structure is returned.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Iterable
from urllib.parse import quote, quote_plus

from ..core.secret_shapes import is_plausible_name, is_secret_key

__all__ = ["REDACTED", "redact", "is_secret_key", "is_reference", "is_plausible_name", "secret_forms",
           "scrub_text"]

REDACTED = "***"
MIN_SECRET_LENGTH = 4

# Keys allowed in a reference dict and the kinds a Chaos Toolkit reference may declare.
_REFERENCE_KEYS = frozenset({"env", "file", "secret", "vault", "type", "key", "path", "name"})
_REFERENCE_TYPES = frozenset({"env", "file", "secret", "vault"})


def is_reference(value: Any) -> bool:
    """True for a dict that points at a secret instead of holding it: ``{"env": NAME}``, ``{"file": PATH}``,
    ``{"secret": NAME}``, ``{"type": "env", "key": NAME}``… where every name is a plausible name or path.
    ``{"key": X}`` alone is not a reference (no kind says what X names)."""
    if not isinstance(value, dict) or not value:
        return False
    if not set(value) <= _REFERENCE_KEYS:
        return False
    if not (set(value) & {"env", "file", "secret", "vault", "path"}) and "type" not in value:
        return False
    if "type" in value and value["type"] not in _REFERENCE_TYPES:
        return False
    return all(isinstance(v, str) and is_plausible_name(v) for v in value.values())


# ------------------------------------------------------------------------------------------------ forms
def secret_forms(secret: str) -> set[str]:
    """The ways ``secret`` may be written in text: raw, URL-encoded, JSON- and repr-escaped, hex, base64."""
    s = str(secret)
    forms = {s}
    for enc in (quote(s, safe=""), quote(s), quote_plus(s), quote_plus(s, safe="")):
        forms.add(enc)
        forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), enc))
    once = json.dumps(s)[1:-1]
    forms.update({once, json.dumps(s, ensure_ascii=False)[1:-1], json.dumps(once)[1:-1]})
    forms.update({repr(s)[1:-1], s.replace("\\", "\\\\"), s.replace("\\", "\\\\").replace("'", "\\'"),
                  s.replace("\\", "\\\\").replace('"', '\\"')})
    try:
        raw = s.encode("utf-8")
    except UnicodeEncodeError:
        raw = s.encode("utf-8", "surrogatepass")
    forms.update({raw.hex(), raw.hex().upper()})
    for b64 in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms.add(b64)
        forms.add(b64.rstrip("="))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


# Free-text patterns: (regex, group holding the secret).
_KEYWORDS = (r"passwords?|passwd|pwd|passphrase|pass|secret|secret[_-]?key|client[_-]?secret|token|access[_-]?token|"
             r"auth[_-]?token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|psk|credentials?")
_TEXT_PATTERNS = [
    # password=xyz, "token": "xyz", api_key: xyz, PASSWORD='x y'
    re.compile(r"(?i)(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_-])?(?:" + _KEYWORDS + r")[\"']?\s*[:=]\s*"
               r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s,;&\"'}\])]+)"),
    re.compile(r"(?i)\b(?:authorization|proxy-authorization)\s*[:=]\s*[\"']?(?:basic|bearer|token|digest|negotiate)"
               r"\s+([A-Za-z0-9+/=._~\-]+)"),
    re.compile(r"(?i)\b(?:bearer)\s+([A-Za-z0-9+/=._~\-]{8,})"),
    re.compile(r"(?i)--(?:password|passwd|pass|token|secret|api-key)(?:=|\s+)(\"[^\"]*\"|'[^']*'|\S+)"),
    re.compile(r"\b(?:mysql|MYSQL|mariadb)\w*\b[^\n]*?\s-p(\"[^\"]*\"|'[^']*'|[^\s\"']+)"),  # -P is the port
    re.compile(r"(?i)\bidentified\s+(?:with\s+\S+\s+)?by\s+(\"[^\"]*\"|'[^']*'|\S+)"),
    re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s/:@]+:([^\s/@]+)@"),
]
_B64_TOKEN_RE = re.compile(r"[A-Za-z0-9+/_\-]{8,}={0,2}")


def scrub_text(text: str) -> tuple[str, set[str]]:
    """Scrub secrets written next to their name in free text; returns the text and the values removed."""
    found: set[str] = set()
    for pat in _TEXT_PATTERNS:
        if not pat.search(text):
            continue

        def repl(m: re.Match[str]) -> str:
            value = m.group(1)
            inner = value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" else value
            if inner in ("", REDACTED) or inner.startswith(REDACTED) or inner.startswith("%(") or \
                    inner.startswith("${") or inner.startswith("<"):
                return m.group(0)
            if len(inner) >= MIN_SECRET_LENGTH:
                found.add(inner)
            start, end = m.span(1)
            quote_ch = value[0] if inner is not value else ""
            return m.group(0)[: start - m.start()] + f"{quote_ch}{REDACTED}{quote_ch}" + m.group(0)[end - m.start():]

        text = pat.sub(repl, text)
    return text, found


# ------------------------------------------------------------------------------------------------ redact
def _compile(secrets: Iterable[Any]) -> tuple[re.Pattern[str] | None, re.Pattern[bytes] | None, frozenset[str]]:
    values = {str(s) for s in secrets if s is not None and not isinstance(s, bool)
              and len(str(s)) >= MIN_SECRET_LENGTH and str(s) != REDACTED}
    if not values:
        return None, None, frozenset()
    forms: set[str] = set()
    for v in values:
        forms |= secret_forms(v)
    # Longest first so that a secret containing another is replaced whole.
    ordered = sorted(forms, key=lambda s: (-len(s), s))
    text_re = re.compile("|".join(re.escape(s) for s in ordered))
    raw_forms: set[bytes] = set()
    for v in values:
        for f in (v, quote(v, safe=""), quote_plus(v), json.dumps(v)[1:-1]):
            raw_forms.add(f.encode("utf-8", "surrogatepass"))
    bytes_re = re.compile(b"|".join(re.escape(b) for b in sorted(raw_forms, key=lambda b: -len(b))))
    return text_re, bytes_re, frozenset(values)


def redact(obj: Any, secrets: Iterable[Any] = ()) -> Any:
    """Return a copy of ``obj`` with every secret removed (see the module docstring for the rules).

    ``secrets`` are literal secret values (passwords, PSKs, tokens) known to the caller; values shorter than
    4 characters are ignored, since replacing them would destroy unrelated text.
    """
    given = {str(s) for s in secrets if s is not None}
    found: set[str] = set()
    out = _Redactor(given, found).walk(obj, False)
    new = found - given
    if new:
        # A literal under a secret-looking key (or next to a password= in a message) may also appear elsewhere
        # (a command line, an error message, encoded): scrub again with it known.
        out = _Redactor(given | new, set()).walk(obj, False)
    return out


# Scrubbed short strings (keys, states, names) per set of known secrets, shared across calls: a review or an
# archive sees the same keys in every journal. Only results that found nothing new are cached.
_SCRUB_CACHES: dict[frozenset[str], dict[str, str]] = {}
_CACHE_SETS, _CACHE_ENTRIES, _CACHE_MAX_LEN = 8, 50_000, 256


def _scope_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) and len(x) <= 64 and is_plausible_name(x)
                                           for x in value)


class _Redactor:
    def __init__(self, secrets: Iterable[Any], found: set[str]) -> None:
        values = frozenset(str(s) for s in secrets if s is not None)
        self.pattern, self.bytes_pattern, self.exact = _compile(values)
        self.found = found
        cache = _SCRUB_CACHES.get(values)
        if cache is None:
            if len(_SCRUB_CACHES) >= _CACHE_SETS:
                _SCRUB_CACHES.pop(next(iter(_SCRUB_CACHES)))
            cache = _SCRUB_CACHES[values] = {}
        self.cache = cache

    def _b64(self, m: re.Match[str]) -> str:
        token = m.group(0)
        if self.bytes_pattern is None:  # no secret: scrub() does not call this then
            return token
        body = token.rstrip("=")
        for offset in range(4):
            chunk = body[offset:]
            chunk = chunk[: len(chunk) - len(chunk) % 4] if len(chunk) % 4 == 1 else chunk
            if len(chunk) < 6:
                break
            padded = chunk + "=" * (-len(chunk) % 4)
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    raw = decode(padded)
                except (binascii.Error, ValueError):
                    continue
                if self.bytes_pattern.search(raw):
                    return REDACTED
        return token

    def scrub(self, text: str) -> str:
        if len(text) < MIN_SECRET_LENGTH:
            return text
        hit = self.cache.get(text)
        if hit is not None:
            return hit
        out, found = scrub_text(text)
        if found:
            self.found |= found
        if self.pattern is not None:
            out = self.pattern.sub(REDACTED, out)
            if self.bytes_pattern is not None and len(out) >= 8:
                out = _B64_TOKEN_RE.sub(self._b64, out)
        if not found and len(text) <= _CACHE_MAX_LEN and len(self.cache) < _CACHE_ENTRIES:
            self.cache[text] = out
        return out

    def hide(self, value: Any) -> str:
        text = str(value)
        if len(text) >= MIN_SECRET_LENGTH and text != REDACTED:
            self.found.add(text)
        return REDACTED

    def key(self, k: Any) -> Any:
        return self.scrub(k) if isinstance(k, str) else k

    def reference(self, value: dict[str, Any]) -> dict[str, Any]:
        # Names are kept, still scrubbed: a name equal to a known secret goes too.
        return {self.key(k): self.scrub(v) for k, v in value.items()}

    def walk(self, value: Any, under_secret: bool) -> Any:
        if isinstance(value, str):
            return self.hide(value) if under_secret else self.scrub(value)
        if isinstance(value, dict):
            if under_secret and is_reference(value):
                return self.reference(value)
            out = {}
            for k, v in value.items():
                if under_secret or not (isinstance(k, str) and is_secret_key(k)):
                    out[self.key(k)] = self.walk(v, under_secret)
                elif is_reference(v):
                    out[self.key(k)] = self.reference(v)
                elif k == "secrets" and _scope_names(v):
                    # Chaos Toolkit's provider `secrets: [scope, …]` lists scope *names*: hiding them would make
                    # every string equal to a scope's name (e.g. the journal's own `drpoc` key) a "secret"
                    out[self.key(k)] = [self.scrub(x) for x in v]
                else:
                    out[self.key(k)] = self.walk(v, True)
            return out
        if isinstance(value, (list, tuple)):
            return [self.walk(v, under_secret) for v in value]
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            if under_secret:
                return self.hide(value)
            return REDACTED if self.exact and str(value) in self.exact else value
        # Anything else is not JSON; keep it as text so that it cannot smuggle a secret through.
        return self.hide(value) if under_secret else self.scrub(str(value))
