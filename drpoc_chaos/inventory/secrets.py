"""Secret references: a password in the inventory is `{env: NAME}`, `{file: PATH}` or `{secret: NAME}`, and
`resolve_secret()` turns it into the value at the moment a connection is opened. Values are never stored, never put
in a message and never logged; a reference whose name looks like the secret itself is refused without echoing it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

from ..core.secret_shapes import is_plausible_name
from .models import InventoryError

SECRET_KINDS = ("env", "file", "secret")
# What a reference may name: an environment variable, a Chaos Toolkit secret (scope.NAME).
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}(?:\.[A-Za-z_][A-Za-z0-9_-]{0,127})?$")


def _plausible_name(kind: str, name: str) -> bool:
    """True when a reference's name reads like a name (or a path), not like the secret value itself."""
    if kind == "env":
        return bool(_ENV_NAME_RE.match(name))
    if kind == "secret":
        return bool(_SECRET_NAME_RE.match(name))
    return is_plausible_name(name)


def resolve_secret(ref: Mapping | None, secrets: Mapping | None = None, *, where: str | None = None) -> str:
    """Turn a password reference into its value.

    `{"env": NAME}` → the environment variable; `{"file": PATH}` → the file's content, stripped;
    `{"secret": NAME}` → Chaos Toolkit secrets, either flat (`{NAME: value}`) or scoped (`{scope: {NAME: value}}`,
    the shape chaostoolkit passes to activities); `scope.NAME` picks one scope. Raises InventoryError (naming the
    variable, file or secret, never the value) when it cannot. `where` names the key for the message.
    """
    key = where or "password"
    if not isinstance(ref, Mapping) or len(ref) != 1 or next(iter(ref)) not in SECRET_KINDS:
        raise InventoryError("not a secret reference", key=key,
                             fix="write {env: NAME}, {file: PATH} or {secret: NAME}")
    kind, name = next(iter(ref.items()))
    if not isinstance(name, str) or not name:
        raise InventoryError(f"`{kind}` needs a non-empty name", key=key)
    if not _plausible_name(kind, name):
        # It is probably the secret itself: never repeat it.
        raise InventoryError(f"`{kind}` must name {_WHAT[kind]}, and this does not look like one (not shown: it "
                             "may be the secret itself)", key=key,
                             fix=f"put the value in {_WHAT[kind]} and write {kind}: <{_WHAT_SHORT[kind]}>")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise InventoryError(f"environment variable {name} is not set", key=key,
                                 fix=f"export {name} in the environment that runs the drill")
        if not value.strip():
            raise InventoryError(f"environment variable {name} is empty", key=key,
                                 fix=f"put the password in {name}")
        return value.strip()
    if kind == "file":
        path = Path(name).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise InventoryError(f"password file {path} does not exist", key=key,
                                 fix="create it (mode 0600) or fix the path; the lab writes it on `drpoc lab up`"
                                 ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InventoryError(f"cannot read password file {path} ({exc.__class__.__name__}: "
                                 f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'})", key=key,
                                 fix="make it readable by the user running the drill") from None
        if not value:
            raise InventoryError(f"password file {path} is empty", key=key, fix="write the password into it")
        return value
    # kind == "secret"
    return _from_chaos_secrets(name, secrets or {}, key)


_WHAT = {"env": "an environment variable (letters, digits, _)", "file": "a file path",
         "secret": "a Chaos Toolkit secret (NAME or scope.NAME)"}
_WHAT_SHORT = {"env": "NAME", "file": "PATH", "secret": "NAME"}


def _from_chaos_secrets(name: str, secrets: Mapping, key: str) -> str:
    # A Python activity gets the scopes its provider lists merged flat ({NAME: value}: chaoslib's python provider);
    # a control gets them scoped ({scope: {NAME: value}}). `scope.NAME` reads either way.
    found: list[tuple[str, Any]] = []
    scope, _, short = name.partition(".")
    if name in secrets and not isinstance(secrets[name], Mapping):
        found.append(("", secrets[name]))
    elif short and isinstance(secrets.get(scope), Mapping) and short in secrets[scope]:
        found.append((scope, secrets[scope][short]))
    elif short and short in secrets and not isinstance(secrets[short], Mapping):
        found.append(("", secrets[short]))
    else:
        for scope_name, values in secrets.items():
            if isinstance(values, Mapping) and name in values:
                found.append((scope_name, values[name]))
    if not found:
        if not secrets:
            listed = (" (no secrets reached this activity: its provider lists no `secrets:` scope, or the scope is "
                      "empty)")
        else:  # names only, never values: they are written in the experiment anyway
            listed = f" (secrets given: {', '.join(sorted(str(k) for k in secrets))})"
        raise InventoryError(f"Chaos Toolkit secret {name!r} not found{listed}", key=key,
                             fix=f"declare {short or name} in the experiment's `secrets: drpoc:` block and list "
                                 "the scope in the provider (`secrets: [drpoc]`)")
    if len(found) > 1:
        raise InventoryError(f"Chaos Toolkit secret {name!r} is in several scopes "
                             f"({', '.join(s for s, _ in found)})", key=key,
                             fix=f"write {{secret: <scope>.{name}}}")
    value = found[0][1]
    if not isinstance(value, str) or not value:
        raise InventoryError(f"Chaos Toolkit secret {name!r} is empty or not a string", key=key,
                             fix="give it a string value")
    return value
