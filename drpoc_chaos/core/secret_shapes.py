"""What a secret looks like, by name and by shape — shared by the inventory (never echo a value that could be a
secret) and the redactor (evidence/redact.py). Pure."""
from __future__ import annotations

import re
from functools import lru_cache
from itertools import pairwise
from typing import Any

__all__ = ["is_secret_key", "is_plausible_name"]

# Markers that name a secret wherever they appear in a key (after removing separators and lowering the case).
_SECRET_SUBSTRINGS = ("password", "passwd", "passphrase", "passcode", "secret", "token", "apikey", "privatekey",
                      "accesskey", "secretkey", "signingkey", "authorization", "credential", "cookie", "psk",
                      "bearer", "sessionid", "clientsecret")
# Markers that name a secret only as a whole word of the key (``pw`` in ``db_pw``, not in ``pwm``).
_SECRET_WORDS = frozenset({"pwd", "pw", "pass", "auth", "cred", "creds", "passwd", "pin", "otp", "sig", "hmac",
                           "key" + "pair", "privkey", "pkey", "apikey"})
_WORD_SPLIT_RE = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")

_NAME_SEGMENT_RE = re.compile(r"^(?:[A-Za-z]{1,32}[0-9]{0,3}|[0-9]{1,4})$")
_NAME_SHAPE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
_CREDENTIAL_PREFIX_RE = re.compile(r"^(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ghp_|gho_|ghs_|ghu_|github_pat_|glpat-|"
                                   r"xox[abpors]-|sk-|sk_live_|rk_live_|eyJ)", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------ keys
@lru_cache(maxsize=8192)
def is_secret_key(key: str) -> bool:
    """True when a mapping key names a secret value: password, db_pw, apiKey, Authorization, credentials…"""
    if not isinstance(key, str) or not key:
        return False
    flat = re.sub(r"[^a-z0-9]", "", key.lower())
    if any(m in flat for m in _SECRET_SUBSTRINGS):
        return True
    words = [w.lower() for w in _WORD_SPLIT_RE.split(key) if w]
    if any(w in _SECRET_WORDS for w in words):
        return True
    # adjacent words joined: api_key, access-key, private.key, auth_key
    return any(a + b in ("apikey", "accesskey", "privatekey", "secretkey", "authkey", "authtoken")
               for a, b in pairwise(words))


def is_plausible_name(value: Any) -> bool:
    """True for a string that reads like a variable name or a path (``DRPOC_MYSQL_PASSWORD``, ``mysql.password``,
    ``/etc/ipsec.d/onprem-aws.psk``, ``secret/data/drpoc``), not like a credential (``AKIAIOSFODNN7EXAMPLE``,
    ``S3cr3t-Pa55!``, ``xK9$mQ``): every word is letters with at most a few trailing digits, or a small number."""
    if not isinstance(value, str) or not value or len(value) > 512:
        return False
    if _CREDENTIAL_PREFIX_RE.match(value.lstrip("/~.")):
        return False
    text = value
    for prefix in ("~/", "./", "../", "/"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    parts = [p for p in text.split("/")]
    if not parts or any(not p for p in parts[:-1]) or (parts[-1] == "" and len(parts) == 1):
        return False
    for part in parts:
        if part == "":
            continue
        if part in (".", ".."):
            continue
        if not _NAME_SHAPE_RE.match(part.lstrip(".")) and not (part.startswith(".") and part[1:].isalnum()):
            return False
        words = [w for w in re.split(r"[_.\-]+", part) if w]
        if not words or not all(_NAME_SEGMENT_RE.match(w) for w in words):
            return False
        # Mixed case inside one word is allowed only as CamelCase words, not as random case (aBcDeF).
        for w in words:
            letters = re.sub(r"[0-9]", "", w)
            if letters and not (letters.islower() or letters.isupper() or re.fullmatch(r"(?:[A-Z][a-z]+)+", letters)):
                return False
    return True
