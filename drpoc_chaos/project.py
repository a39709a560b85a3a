"""The user's project: the directory with the experiments, the Prefect project (flows/prefect.yaml) and the journal
archive, which every command works in — never the install location (a wheel's site-packages holds no project).

`find_project()` takes `--project-dir` (the command line puts it in DRPOC_PROJECT_DIR) or walks up from the working
directory to the first directory that has both `flows/prefect.yaml` and `experiments/`. `init_project()` writes a
new one from the skeleton shipped as package data (`drpoc_chaos/skeleton/`, the repository's own `experiments/` and
`flows/` through symlinks, so there is one copy of each file): `drpoc init DIR`.
"""
from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

PROJECT_DIR_ENV = "DRPOC_PROJECT_DIR"
PREFECT_FILE = Path("flows") / "prefect.yaml"
EXPERIMENTS_DIR = Path("experiments")
INVENTORY_TEMPLATE = "inventory.yaml"
JOURNAL_DIR = "journal"
# what `drpoc init` writes, from the skeleton: (directory in the skeleton, file suffixes taken)
SKELETON_PARTS = (("experiments", (".yaml",)), ("flows", (".py", ".yaml")))


class ProjectError(ValueError):
    """No project where one is needed, or `drpoc init` would overwrite something: the message says what to do."""


def is_project(path: Path) -> bool:
    return (path / PREFECT_FILE).is_file() and (path / EXPERIMENTS_DIR).is_dir()


def find_project(start: str | os.PathLike | None = None) -> Path:
    """The project directory: $DRPOC_PROJECT_DIR (set by `--project-dir`) when set, else the first of `start` (the
    working directory by default) and its parents that holds flows/prefect.yaml and experiments/."""
    given = os.environ.get(PROJECT_DIR_ENV)
    if given:
        root = Path(given).expanduser().absolute()
        if not is_project(root):
            raise ProjectError(f"--project-dir {root} is not a drpoc project (it needs {PREFECT_FILE} and "
                               f"{EXPERIMENTS_DIR}/): create one with `drpoc init {root}` or fix the path")
        return root
    here = Path(start or Path.cwd()).absolute()
    for candidate in (here, *here.parents):
        if is_project(candidate):
            return candidate
    raise ProjectError(f"no drpoc project in {here} or above it (a project has {PREFECT_FILE} and "
                       f"{EXPERIMENTS_DIR}/): create one with `drpoc init DIR` and run from there, or pass "
                       "--project-dir DIR")


def skeleton() -> Traversable:
    """The shipped project (package data): experiments/, flows/ and the inventory template."""
    return resources.files("drpoc_chaos") / "skeleton"


def skeleton_files() -> dict[str, Traversable]:
    """Relative path in a project → the shipped file, for every file `drpoc init` writes except the journal."""
    files: dict[str, Traversable] = {}
    for folder, suffixes in SKELETON_PARTS:
        for item in sorted((skeleton() / folder).iterdir(), key=lambda t: t.name):
            if item.is_file() and item.name.endswith(suffixes):
                files[f"{folder}/{item.name}"] = item
    files[INVENTORY_TEMPLATE] = skeleton() / INVENTORY_TEMPLATE
    return files


def init_project(directory: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Write a ready project into `directory` (created if missing): experiments/, flows/ (prefect.yaml, the flows),
    inventory.yaml (a commented template) and an empty journal/. Refuses to overwrite a file unless `force`;
    returns the files written."""
    root = Path(directory).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise ProjectError(f"{root} exists and is not a directory: choose another path for `drpoc init`")
    files = skeleton_files()
    clashes = [rel for rel in files if (root / rel).exists()]
    if clashes and not force:
        raise ProjectError(f"{root} already has {', '.join(clashes)}: `drpoc init` never overwrites your files; "
                           "pick an empty directory, or pass --force to replace them with the shipped ones")
    written = []
    for rel, source in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        written.append(target)
    (root / JOURNAL_DIR).mkdir(exist_ok=True)
    return written
