"""Strict identifiers: the names that reach a gateway's command line or a SQL statement.

Quoting alone is not enough: a connection named `--help` is a perfectly quoted option to `ipsec down`, and a table
argument pasted into SQL is an injection. So names are checked against narrow patterns when the inventory or an
experiment is loaded — before anything is touched — and SQL identifiers are also backtick-quoted.
"""
from __future__ import annotations

import ipaddress
import re

# connection, child, host and site names: what strongSwan, OpenSSH and a YAML key all take without quoting. ':' is
# in because generated configs name connections after IPv6 peers (VyOS/DANOS: `peer-11:1::2-tunnel-2`).
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"
_NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "1–64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"

# schema and table names: the unquoted MySQL identifier characters, not all digits
_SQL_IDENT_RE = re.compile(r"[A-Za-z0-9_$]{1,64}")
SQL_IDENT_RULE = "1–64 letters, digits, '_' or '$', not only digits"

_DNS_RE = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
_LOGIN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")

# the words a probe's `site` argument may use instead of a site name (inventory.Inventory.resolve_site)
ROLE_WORDS = ("fault", "peer", "source", "replica")


class IdentifierError(ValueError):
    """A name that may not reach a command line or a statement. The message says what the rule is."""


def name_problem(value: object) -> str | None:
    """Why `value` is not a valid connection/child/host/site name, or None when it is."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not _NAME_RE.fullmatch(value):
        return f"is not a valid name: use {NAME_RULE}"
    return None


def check_name(value: object, what: str) -> str:
    problem = name_problem(value)
    if problem:
        raise IdentifierError(f"{what} {problem}")
    assert isinstance(value, str)
    return value


def address_problem(value: str) -> str | None:
    """Why `value` is neither an IP address nor a DNS name (so it can never be read as an option), or None."""
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if _DNS_RE.fullmatch(value):
        return None
    return "is neither an IP address nor a host name (letters, digits, '-' and '.', not starting with '-')"


def login_problem(value: str) -> str | None:
    """Why `value` is not a plausible SSH login name, or None."""
    if _LOGIN_RE.fullmatch(value):
        return None
    return "is not a valid login name: use up to 32 letters, digits, '_', '.' or '-', starting with a letter or '_'"


def sql_ident_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not _SQL_IDENT_RE.fullmatch(value) or value.isdigit():
        return f"is not a valid schema/table name: use {SQL_IDENT_RULE}"
    return None


def split_table(value: object, what: str = "table") -> tuple[str, str]:
    """`schema.table` → (schema, table), both checked. A table name must say its schema: the drill's connections
    have no default schema they could rely on."""
    if not isinstance(value, str) or value.count(".") != 1:
        raise IdentifierError(f"{what} must be written schema.table (e.g. testdb.ping)")
    schema, table = value.split(".")
    for part in (schema, table):
        problem = sql_ident_problem(part)
        if problem:
            raise IdentifierError(f"{what} {value!r}: {part!r} {problem}" if len(value) <= 130 else
                                  f"{what}: {problem}")
    return schema, table


def quote_table(value: object, what: str = "table") -> str:
    """`schema.table` checked and quoted for SQL: `schema`.`table`."""
    schema, table = split_table(value, what)
    return f"`{schema}`.`{table}`"


def quote_schema(value: object, what: str = "schema") -> str:
    """A schema name checked and quoted for SQL: `name`."""
    problem = sql_ident_problem(value)
    if problem:
        raise IdentifierError(f"{what} {str(value)[:80]!r} {problem}")
    return f"`{value}`"
