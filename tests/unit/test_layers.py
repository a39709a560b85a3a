"""The architecture a reader can see: imports only go down the layers (README, Layout). Read from the source with
`ast`, so a new upward import fails here before it becomes a cycle dodged by an in-function import."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "drpoc_chaos"

# lowest first; a module may import its own layer or any lower one. The package itself (`from .. import
# __version__`) is metadata: it imports nothing of ours at import time (discover() loads activities by name).
LAYERS = [
    ("package metadata", ["__version__", ""]),
    ("pure core", ["core", "vpn.status", "replication.status", "replication.dialect"]),
    ("inventory", ["inventory"]),
    ("transports", ["ports", "remote", "db", "project"]),
    ("evidence", ["evidence"]),
    ("services", ["services"]),
    ("activities", ["activity", "vpn", "replication", "parity"]),
    ("drill", ["drill"]),
    ("lab", ["lab"]),
    # the site failover drill's activities: the lab emulates a lost site's crash and freeze (lab.faults)
    ("failover activities", ["failover"]),
    ("scheduling", ["scheduling"]),
    ("command line", ["cli"]),
]


def layer_of(module: str) -> int:
    """The layer of a dotted module name inside drpoc_chaos (longest prefix wins)."""
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or (p and module.startswith(p + "."))) and len(p) > best:
                best, rank = len(p), i
    assert rank is not None, f"drpoc_chaos.{module} belongs to no layer: add it to LAYERS"
    return rank


def imports_of(path: Path) -> list[tuple[str, int]]:
    """drpoc_chaos modules imported by `path` (relative imports resolved), with their line."""
    here = path.relative_to(PKG).with_suffix("").parts
    package = here[:-1] if here[-1] != "__init__" else here[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [".".join(base + [a.name]) for a in node.names]
            elif node.module and node.module.startswith("drpoc_chaos"):
                names = [node.module[len("drpoc_chaos."):]] if node.module != "drpoc_chaos" else \
                    [a.name for a in node.names]
            else:
                continue
            out += [(n, node.lineno) for n in names if n]
        elif isinstance(node, ast.Import):
            out += [(a.name[len("drpoc_chaos."):], node.lineno) for a in node.names
                    if a.name.startswith("drpoc_chaos.")]
    return out


def test_imports_only_go_down():
    upward = []
    for path in sorted(PKG.rglob("*.py")):
        module = ".".join(path.relative_to(PKG).with_suffix("").parts)
        module = module[:-len(".__init__")] if module.endswith(".__init__") else module
        module = "" if module == "__init__" else module
        mine = layer_of(module)
        for target, line in imports_of(path):
            if layer_of(target) > mine:
                upward.append(f"{path.relative_to(PKG.parent)}:{line}: {LAYERS[mine][0]} imports "
                              f"{target} ({LAYERS[layer_of(target)][0]})")
    assert not upward, "\n".join(upward)


def test_activities_never_import_the_drill_the_lab_or_the_scheduler():
    for path in list((PKG / "vpn").glob("*.py")) + list((PKG / "replication").glob("*.py")):
        for target, line in imports_of(path):
            assert not target.startswith(("drill", "lab", "scheduling")), f"{path.name}:{line} imports {target}"


def test_the_check_sees_an_upward_import():
    assert layer_of("core.metrics") < layer_of("services.gateway") < layer_of("drill.control")
    assert layer_of("vpn.status") == layer_of("core.model") and layer_of("vpn.actions") == layer_of("activity")
