"""drpoc-chaos: disaster-recovery drills for MySQL/MariaDB replication over a strongSwan VPN.

The package is also a Chaos Toolkit extension: `discover()` lists every probe and action.
"""
from __future__ import annotations

__version__ = "0.1.0"
