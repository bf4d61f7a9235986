"""[compat] the harness installs beside an app's own pins without moving them, and its CLI behaves the same on
every click it supports. ``nox -s compat`` runs this file (with the core, schema and chain tests) on the oldest
and the newest stacks; under the default ``nox -s tests`` it checks the stack installed there."""
from __future__ import annotations

import os
import sys
from importlib import metadata

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import REPO, run_cli
from harness.versions import strict_zip, tomllib
from projects import GOOD_MODELS, good_chain, make_project

pytestmark = pytest.mark.fast

#: The oldest release of each library the harness supports (docs/versions.md); `nox -s compat`
#: installs these in its "floor" stack.
FLOORS = {"flask": "2.2", "flask-sqlalchemy": "2.5", "flask-migrate": "3.1", "alembic": "1.9",
          "sqlalchemy": "1.4.18", "click": "8.0", "testcontainers": "4.0"}


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_pyproject_declares_the_oldest_supported_releases() -> None:
    """A floor above what the app pins makes ``pip install migration-harness`` upgrade the app's own Flask."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["requires-python"] == ">=3.9"
    declared = {r.name.lower(): r for r in _requirements()}
    for name, floor in FLOORS.items():
        specifier = declared[name].specifier
        assert [(s.operator, s.version) for s in specifier] == [(">=", floor)], (name, str(specifier))
    tomli = declared["tomli"]
    assert tomli.marker is not None and not tomli.marker.evaluate({**default_environment(), "python_version": "3.11"})


def test_what_is_installed_satisfies_every_requirement() -> None:
    """pip keeps an installed release that satisfies the requirement; so on the floor stack nothing moved."""
    environment = default_environment()
    for requirement in _requirements():
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        installed = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (str(requirement), installed)


@pytest.mark.skipif(not os.environ.get("HARNESS_COMPAT_PINS"), reason="only in nox -s compat with pins")
def test_installing_the_harness_kept_the_apps_pins() -> None:
    """nox -s compat installs the app's stack first and the harness (dependencies resolved) after it: every pin
    must still hold, e.g. Flask 2.2 stays Flask 2.2."""
    moved = []
    for pin in os.environ["HARNESS_COMPAT_PINS"].split(";"):
        requirement = Requirement(pin)
        installed = metadata.version(requirement.name)
        if not requirement.specifier.contains(installed, prereleases=True):
            moved.append(f"{pin}: {installed} is installed")
    assert moved == []


def test_the_floor_stack_is_the_floor() -> None:
    """The floor stack really runs on the oldest Python and releases (an upgraded one would hide a break)."""
    if os.environ.get("HARNESS_COMPAT_STACK") != "floor":
        pytest.skip("only on the floor stack")
    assert sys.version_info[:2] == (3, 9)
    for name, floor in FLOORS.items():
        installed = Version(metadata.version(name))
        assert installed.release[:2] == Version(floor).release[:2], (name, str(installed))


# -- the CLI on every click -----------------------------------------------------------------------------------

def test_no_command_shows_the_help_and_exits_2(tmp_path) -> None:
    proc = run_cli([], tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("Usage: ") and "Commands:" in proc.stderr and "run" in proc.stderr
    assert proc.stdout == ""


def test_an_unknown_option_is_one_line_and_exit_2(tmp_path) -> None:
    proc = run_cli(["run", "--no-such-option"], tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("migration-harness: error: "), lines
    assert "--no-such-option" in lines[0] and lines[0].endswith("(see --help)"), lines


def test_help_and_version_exit_0(tmp_path) -> None:
    proc = run_cli(["--version"], tmp_path)
    assert (proc.returncode, proc.stdout.strip()) == (0, "migration-harness, version 0.1.0"), proc.stderr
    proc = run_cli(["run", "--help"], tmp_path)
    assert proc.returncode == 0 and "--step-timeout" in proc.stdout, proc.stderr


def test_a_bad_value_is_exit_2(tmp_path) -> None:
    proc = run_cli(["run", "--app", "app", "--step-timeout", "soon"], tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "soon" in proc.stderr


# -- testcontainers: the harness starts its own containers --------------------------------------------------------

def test_the_harness_starts_its_own_containers(harness, tmp_path) -> None:
    """Through whichever module path this testcontainers has (``testcontainers.community.*`` from 4.15)."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    run = harness(project, "--checks", "upgrade,downgrade", db=("postgresql", "mysql"), use_servers=False,
                  env={"HARNESS_POSTGRESQL_URL": "", "HARNESS_MYSQL_URL": ""})
    assert run.exit_code == 0, run.stdout + run.stderr
    assert {d["dialect"]: d["backend"] for d in run.report["databases"]} == {"postgresql": "container",
                                                                            "mysql": "container"}
    assert run.statuses("downgrade") == {"postgresql": "passed", "mysql": "passed"}


# -- Python ---------------------------------------------------------------------------------------------------

def test_strict_zip() -> None:
    assert list(strict_zip([1, 2], "ab")) == [(1, "a"), (2, "b")]
    with pytest.raises(ValueError):
        list(strict_zip([1, 2], "a"))
