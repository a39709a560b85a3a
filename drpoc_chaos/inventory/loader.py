"""Finding, reading and parsing the inventory file, and the cache.

The file is, first match wins: the path given, `configuration["inventory"]`, `$DRPOC_INVENTORY`,
`DEFAULT_LAB_INVENTORY`. The YAML is read safely: duplicate keys are refused, a document whose aliases would expand
past `MAX_EXPANDED_NODES` is refused before anything expands it, and every key path keeps its line for messages.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Mapping

import yaml

from .checks import build_fleet
from .models import Fleet, Inventory, InventoryError

DEFAULT_LAB_INVENTORY = Path("/var/lib/drpoc-lab/inventory.yaml")

WHERE_TO_LOOK = "run `drpoc lab up` or set DRPOC_INVENTORY / the `inventory` configuration key"
# A real inventory has a few hundred YAML nodes; anchors and aliases are fine, but a document whose aliases expand
# to more than this many nodes (a "billion laughs" alias bomb) is refused before anything walks the expansion.
MAX_EXPANDED_NODES = 20_000

_cache: dict[tuple[str, int, int], Fleet] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _inventory_path(path, configuration) -> tuple[Path, str]:
    if path:
        return Path(path).expanduser(), "the path given"
    if configuration and configuration.get("inventory"):
        return Path(str(configuration["inventory"])).expanduser(), "configuration key `inventory`"
    if os.environ.get("DRPOC_INVENTORY"):
        return Path(os.environ["DRPOC_INVENTORY"]).expanduser(), "environment variable DRPOC_INVENTORY"
    return DEFAULT_LAB_INVENTORY, "the lab's default path"


def load_fleet(path: str | os.PathLike | None = None, configuration: Mapping | None = None) -> Fleet:
    """Load and check the inventory file as a `Fleet` of replication pairs (a version 1 file is one pair).

    The file is, first match wins: `path`, `configuration["inventory"]`, `$DRPOC_INVENTORY`,
    `DEFAULT_LAB_INVENTORY`. Loaded files are cached by (path, mtime, size). Raises InventoryError.
    """
    where, origin = _inventory_path(path, configuration)
    where = where.absolute()
    try:
        st = where.stat()
    except FileNotFoundError:
        raise InventoryError(f"no inventory file (from {origin})", path=where, fix=WHERE_TO_LOOK) from None
    except OSError as exc:
        raise InventoryError(f"cannot read the inventory ({exc.strerror})", path=where,
                             fix="make it readable by the user running the drill") from None
    cache_key = (str(where), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        cached = _cache.get(cache_key)
    if cached is not None:
        return cached
    try:
        text = where.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise InventoryError("is a directory, not an inventory file", path=where, fix=WHERE_TO_LOOK) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read the inventory ({exc})", path=where,
                             fix="make it a readable UTF-8 file") from None
    fleet = parse_fleet(text, where)
    with _cache_lock:
        _cache[cache_key] = fleet
    return fleet


def load_inventory(path: str | os.PathLike | None = None, configuration: Mapping | None = None,
                   pair: str | None = None) -> Inventory:
    """Load and check the inventory, and return one replication pair's view of it (an `Inventory`).

    The file is found as by `load_fleet()`. The pair is `pair`, else `configuration["pair"]`, else the file's only
    pair (a version 1 file is one pair, named after its replica's site). A file of several pairs with none chosen,
    or a name that is not one of its pairs, raises InventoryError listing them.
    """
    fleet = load_fleet(path, configuration)
    origin = "the `pair` argument"
    if pair is None and configuration:
        chosen = configuration.get("pair")
        if chosen is not None and chosen != "":
            pair, origin = chosen, "configuration key `pair`"
    return fleet.choose(pair, origin)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a second `aws-vpn:` would silently win otherwise)."""

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root, limit: int = MAX_EXPANDED_NODES) -> int:
    """How many nodes the document has once its aliases are expanded, computed without expanding them (each
    distinct node once, memoised): linear in the file, whatever the aliases multiply to. Stops counting past
    ``limit``."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    # Iterative post-order: an alias bomb is also deep enough to exhaust recursion in a naive walk.
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if not done:
            if id(node) in visiting:  # an alias to an enclosing anchor: the expansion is infinite
                return limit + 1
            visiting.add(id(node))
        children = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done or not children:
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes.get(id(c), 0) for c in children))
            visiting.discard(id(node))
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes.get(id(root), 0)


def _lines(node, prefix: str = "", out: dict | None = None, seen: set | None = None) -> dict[str, int]:
    """Key path → 1-based line, from a composed YAML node tree. An aliased node is walked once (at its anchor):
    its lines are where it is written, and an alias bomb cannot make this walk explode."""
    out = {} if out is None else out
    seen = set() if seen is None else seen
    if id(node) in seen:
        return out
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out.setdefault(path, key_node.start_mark.line + 1)
            _lines(value_node, path, out, seen)
    return out


def _parse_yaml(text: str, path: str | os.PathLike) -> tuple[Any, dict[str, int]]:
    """The document and its key paths' lines; duplicate keys and alias bombs refused."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node) > MAX_EXPANDED_NODES:
            raise InventoryError(f"refused: its YAML aliases expand to more than {MAX_EXPANDED_NODES} nodes (an "
                                 "alias bomb?); an inventory needs a few hundred", path=path,
                                 fix="write the entries out, or use anchors and aliases only for small repeated "
                                     "blocks")
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context
        fix = ("keep one of the two entries" if "duplicate key" in str(problem)
               else "fix the YAML syntax at that line or just before it")
        raise InventoryError(f"not valid YAML: {problem}", path=path, line=line, fix=fix) from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"not valid YAML: {exc}", path=path, fix="fix the YAML syntax") from None
    finally:
        loader.dispose()
    return data, _lines(node) if node is not None else {}


def parse_fleet(text: str, path: str | os.PathLike = "<inventory>") -> Fleet:
    """Parse and check inventory YAML `text`, version 1 or 2, as a `Fleet` (pure; `path` is for messages and
    relative paths)."""
    data, lines = _parse_yaml(text, path)
    return build_fleet(data, Path(path), lines)


def parse_inventory(text: str, path: str | os.PathLike = "<inventory>", pair: str | None = None) -> Inventory:
    """Parse and check inventory YAML `text` (pure; `path` is for messages and relative paths) and return the pair
    `pair`, or the only pair (a version 1 file, or a version 2 file of one pair)."""
    return parse_fleet(text, path).choose(pair)
