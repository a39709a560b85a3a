"""The constants of the scheduling package, in one place, and what every module of it shares: the operator-facing
error and the clock."""
from __future__ import annotations

import re
from pathlib import Path

from ..core.clock import utc_now  # noqa: F401 — the scheduler's modules take the clock from here
from ..project import PREFECT_FILE as _PREFECT_FILE_IN_PROJECT
from ..project import find_project

DEFAULT_EXPERIMENT = "experiments/vpn_outage.yaml"
DEFAULT_ARCHIVE_DIR = "journal"
DEFAULT_MAX_LATENESS_SECONDS = 3600.0
DEFAULT_DRILL_TIMEOUT_SECONDS = 1800.0
DEFAULT_CHECK_TIMEOUT_SECONDS = 300.0
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
DEFAULT_DEPLOYMENT = "dr-drill/weekly-drill"
WORK_POOL_TYPE = "process"
DRILL_CONTROL_MODULE = "drpoc_chaos.drill.control"
# After SIGINT the drill control restores the tunnel (up to its restore_timeout_seconds, default 90 s) and
# archives: give it that long before escalating.
INTERRUPT_GRACE_SECONDS = 150.0

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SchedulingError(RuntimeError):
    """A scheduler or drill-run problem with a message meant for the operator."""


def project_root(root: Path | None = None) -> Path:
    """`root`, else the user's project (drpoc_chaos.project.find_project: --project-dir, else the working directory
    or a parent): where experiments/, flows/prefect.yaml, journal/ and the scheduler's .state/ are. Never the
    install location."""
    return Path(root) if root is not None else find_project()


def prefect_file(root: Path | None = None) -> Path:
    """The project's flows/prefect.yaml."""
    return project_root(root) / _PREFECT_FILE_IN_PROJECT



