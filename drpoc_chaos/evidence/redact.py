"""Remove secret values from a JSON-like structure before it is archived.

Two rules, applied everywhere in the structure (dict keys and values, lists, tuples):

* every occurrence of a known secret value (at least 4 characters) inside any string is replaced by ``***``;
* a key that looks secret (``password``, ``passwd``, ``psk``, ``secret``, ``private_key``, ``token``; any case,
  anywhere in the key) has its value replaced by ``***`` — unless the value is a *reference*: a dict such as
  ``{"env": "MYSQL_PWD"}``, ``{"file": "/path"}``, ``{"secret": "name"}`` or Chaos Toolkit's
  ``{"type": "env", "key": "NAME"}``, whose values are names or paths, not secrets. When the value is a container
  that is not a reference, its structure is kept and every leaf that is not part of a reference is replaced.

Values found under secret-looking keys are themselves added to the known secrets, so a password that also appears
inside a logged command line is scrubbed there too. The input is never modified; a new structure is returned.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable

__all__ = ["REDACTED", "redact", "is_secret_key", "is_reference"]

REDACTED = "***"
MIN_SECRET_LENGTH = 4

_SECRET_KEY_RE = re.compile(r"password|passwd|psk|secret|private_key|private-key|privatekey|token", re.IGNORECASE)
# Keys allowed in a reference dict and the kinds a Chaos Toolkit reference may declare.
_REFERENCE_KEYS = frozenset({"env", "file", "secret", "vault", "type", "key", "path", "name"})
_REFERENCE_TYPES = frozenset({"env", "file", "secret", "vault"})
# A name or a path: no whitespace, a bounded length.
_NAME_OR_PATH_RE = re.compile(r"^[A-Za-z0-9_./:@~+=,-]{1,512}$")


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True when a mapping key names a secret value (password, psk, token…)."""
    return bool(_SECRET_KEY_RE.search(key))


def is_reference(value: Any) -> bool:
    """True for a dict that points at a secret instead of holding it: ``{"env": NAME}``, ``{"file": PATH}``,
    ``{"secret": NAME}``, ``{"type": "env", "key": NAME}``…"""
    if not isinstance(value, dict) or not value:
        return False
    if not set(value) <= _REFERENCE_KEYS:
        return False
    if not (set(value) & {"env", "file", "secret", "vault", "key", "path"}):
        return False
    if "type" in value and value["type"] not in _REFERENCE_TYPES:
        return False
    return all(isinstance(v, str) and _NAME_OR_PATH_RE.match(v) for v in value.values())


def _compile(secrets: Iterable[Any]) -> tuple[re.Pattern[str] | None, frozenset[str]]:
    values = {str(s) for s in secrets if s is not None and len(str(s)) >= MIN_SECRET_LENGTH}
    if not values:
        return None, frozenset()
    # Longest first so that a secret containing another is replaced whole.
    ordered = sorted(values, key=lambda s: (-len(s), s))
    return re.compile("|".join(re.escape(s) for s in ordered)), frozenset(values)


def redact(obj: Any, secrets: Iterable[Any] = ()) -> Any:
    """Return a copy of ``obj`` with every secret removed (see the module docstring for the rules).

    ``secrets`` are literal secret values (passwords, PSKs, tokens) known to the caller; values shorter than
    4 characters are ignored, since replacing them would destroy unrelated text.
    """
    given = list(secrets)
    found: set[str] = set()
    out = _Redactor(given, found).walk(obj, False)
    new = found - {str(s) for s in given if s is not None}
    if new:
        # A literal under a secret-looking key may also appear elsewhere (a command line, an error message):
        # scrub again with it known. Rare, so the common case stays a single pass.
        out = _Redactor([*given, *new], set()).walk(obj, False)
    return out


class _Redactor:
    def __init__(self, secrets: Iterable[Any], found: set[str]) -> None:
        self.pattern, self.exact = _compile(secrets)
        self.found = found
        self.key_cache: dict[str, bool] = {}

    def secret_key(self, key: Any) -> bool:
        if not isinstance(key, str):
            return False
        hit = self.key_cache.get(key)
        if hit is None:
            hit = self.key_cache[key] = is_secret_key(key)
        return hit

    def scrub(self, text: str) -> str:
        if self.pattern is None or len(text) < MIN_SECRET_LENGTH:
            return text
        return self.pattern.sub(REDACTED, text)

    def hide(self, value: Any) -> str:
        text = str(value)
        if len(text) >= MIN_SECRET_LENGTH:
            self.found.add(text)
        return REDACTED

    def key(self, k: Any) -> Any:
        return self.scrub(k) if isinstance(k, str) else k

    def walk(self, value: Any, under_secret: bool) -> Any:
        if isinstance(value, str):
            return self.hide(value) if under_secret else self.scrub(value)
        if isinstance(value, dict):
            if under_secret and is_reference(value):
                return {self.key(k): self.scrub(v) for k, v in value.items()}
            out = {}
            for k, v in value.items():
                if under_secret or not self.secret_key(k):
                    out[self.key(k)] = self.walk(v, under_secret)
                elif is_reference(v):
                    out[self.key(k)] = {self.key(rk): self.scrub(rv) for rk, rv in v.items()}
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
