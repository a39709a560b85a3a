"""The product outside the repository: the project a command works in (never the install location), `drpoc init`,
and the wheel carrying the one copy of the experiments and flows (item 1 of "Install it like a product")."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from drpoc_chaos.cli import main
from drpoc_chaos.inventory import parse_inventory
from drpoc_chaos.project import PROJECT_DIR_ENV, ProjectError, find_project, init_project, skeleton_files
from drpoc_chaos.scheduling import default_state_dir, prefect_file, resolve_experiment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_project_env(monkeypatch):
    # set then delete: monkeypatch then restores "unset" after the test, also when `main` set it
    monkeypatch.setenv(PROJECT_DIR_ENV, "")
    monkeypatch.delenv(PROJECT_DIR_ENV)


def test_the_checkout_is_a_project():
    assert find_project(REPO / "drpoc_chaos" / "core") == REPO


def test_found_from_the_working_directory_or_a_parent(tmp_path, monkeypatch):
    init_project(tmp_path / "proj")
    (tmp_path / "proj" / "journal" / "deep").mkdir()
    monkeypatch.chdir(tmp_path / "proj" / "journal" / "deep")
    assert find_project() == tmp_path / "proj"
    assert prefect_file() == tmp_path / "proj" / "flows" / "prefect.yaml"
    assert default_state_dir() == tmp_path / "proj" / ".state" / "prefect"
    assert resolve_experiment("experiments/vpn_outage.yaml") == tmp_path / "proj" / "experiments" / "vpn_outage.yaml"


def test_no_project_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectError, match=r"no drpoc project in .* create one with `drpoc init DIR`.*--project-dir"):
        find_project()
    # a command that needs one says so, without a traceback
    assert main(["schedule", "status"]) == 1


def test_project_dir_overrides_the_working_directory(tmp_path, monkeypatch):
    init_project(tmp_path / "a")
    monkeypatch.chdir(REPO)
    monkeypatch.setenv(PROJECT_DIR_ENV, str(tmp_path / "a"))
    assert find_project() == tmp_path / "a"
    monkeypatch.setenv(PROJECT_DIR_ENV, str(tmp_path))
    with pytest.raises(ProjectError, match="is not a drpoc project"):
        find_project()


def test_project_dir_option_sets_it_for_the_command(tmp_path, monkeypatch, capsys):
    init_project(tmp_path / "a")
    monkeypatch.chdir(tmp_path)  # not a project: without --project-dir the command refuses
    assert main(["schedule", "down"]) == 1 and "no drpoc project" in capsys.readouterr().err
    # schedule down reads <project>/.state/prefect: nothing was started there
    assert main(["--project-dir", str(tmp_path / "a"), "schedule", "down"]) == 0
    assert os.environ[PROJECT_DIR_ENV] == str(tmp_path / "a")
    assert "the scheduler was not running" in capsys.readouterr().err


def test_init_writes_the_shipped_files_and_an_empty_journal(tmp_path):
    written = init_project(tmp_path / "new")
    rel = sorted(str(p.relative_to(tmp_path / "new")) for p in written)
    assert rel == sorted(["inventory.yaml", "flows/prefect.yaml", "flows/automations.yaml", "flows/drills.py",
                          "flows/deploy.py", "flows/campaign.py",
                          *[f"experiments/{p.name}" for p in (REPO / "experiments").glob("*.yaml")]])
    for path in rel:
        if path != "inventory.yaml":  # one source of truth: the project gets exactly the checkout's files
            assert (tmp_path / "new" / path).read_bytes() == (REPO / path).read_bytes(), path
    assert (tmp_path / "new" / "journal").is_dir() and not any((tmp_path / "new" / "journal").iterdir())
    inv = parse_inventory((tmp_path / "new" / "inventory.yaml").read_text(), tmp_path / "new" / "inventory.yaml")
    assert inv.name == "my-sites" and inv.source.site == "aws" and inv.hosts["aws-db"].jump == "aws-vpn"


def test_init_never_overwrites_unless_forced(tmp_path, capsys):
    init_project(tmp_path / "p")
    mine = tmp_path / "p" / "experiments" / "vpn_outage.yaml"
    mine.write_text("# my edits\n")
    assert main(["init", str(tmp_path / "p")]) == 1
    assert "never overwrites" in capsys.readouterr().err and mine.read_text() == "# my edits\n"
    assert main(["init", "--force", str(tmp_path / "p")]) == 0
    assert mine.read_bytes() == (REPO / "experiments" / "vpn_outage.yaml").read_bytes()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ProjectError, match="not a directory"):
        init_project(tmp_path / "file")


def test_skeleton_is_the_checkout_through_symlinks():
    """The repository's experiments/ and flows/ are the one copy; the package reaches them through symlinks."""
    for name in ("experiments", "flows"):
        link = REPO / "drpoc_chaos" / "skeleton" / name
        assert link.is_symlink() and link.resolve() == (REPO / name).resolve()
    assert set(skeleton_files()) >= {"experiments/vpn_outage.yaml", "flows/prefect.yaml", "inventory.yaml"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel as a user's `pip install` builds it: an isolated build with pyproject's build floor."""
    out = tmp_path_factory.mktemp("wheel")
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=out)
    assert p.returncode == 0, p.stderr[-2000:]
    (whl,) = out.glob("drpoc_chaos-*.whl")
    return whl


def test_wheel_ships_the_project_with_the_checkouts_content(wheel):
    assert wheel.name.startswith(f"drpoc_chaos-{version('drpoc-chaos')}-")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for rel in [*(f"experiments/{p.name}" for p in (REPO / "experiments").glob("*.yaml")),
                    "flows/prefect.yaml", "flows/drills.py", "flows/deploy.py", "flows/automations.yaml",
                    "flows/campaign.py"]:
            assert z.read(f"drpoc_chaos/skeleton/{rel}") == (REPO / rel).read_bytes(), rel
        assert "drpoc_chaos/skeleton/inventory.yaml" in names
        assert "drpoc_chaos/evidence/templates/report.html" in names
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta
    assert not any("__pycache__" in n for n in names)


def test_build_floor_reads_the_license_expression():
    text = (REPO / "pyproject.toml").read_text()
    assert 'requires = ["setuptools>=77.0.3"]' in text and 'license = "Apache-2.0"' in text
