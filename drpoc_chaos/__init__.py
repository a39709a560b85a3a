"""drpoc-chaos: disaster-recovery drills for MySQL/MariaDB replication over a strongSwan VPN.

The package is also a Chaos Toolkit extension: `discover()` lists every probe and action
(`chaos discover --no-install drpoc-chaos`).
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:  # the one version is pyproject.toml's, read from the installed package's metadata
    __version__ = version("drpoc-chaos")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

# every module that exports activities, with the kind each one exports
ACTIVITY_MODULES = (
    ("drpoc_chaos.vpn.probes", "probe"),
    ("drpoc_chaos.vpn.actions", "action"),
    ("drpoc_chaos.replication.probes", "probe"),
    ("drpoc_chaos.replication.actions", "action"),
    ("drpoc_chaos.drill.actions", "action"),
    ("drpoc_chaos.lab.faults", "action"),
    ("drpoc_chaos.parity.probes", "probe"),
    ("drpoc_chaos.parity.actions", "action"),
)


def discover(discover_system: bool = True) -> dict:
    """Describe this extension and its activities for `chaos discover`."""
    from chaoslib.discovery.discover import discover_activities, initialize_discovery_result

    discovery = initialize_discovery_result("drpoc-chaos", __version__, "drpoc")
    for module, kind in ACTIVITY_MODULES:
        discovery["activities"].extend(discover_activities(module, kind))
    return discovery
