"""[docs] The documentation site builds strictly from docs/ (a broken link, a missing anchor, a page left out of
the nav is a warning, and a warning fails the build), the strict build does catch a broken link, the README stays
short and its links land, and the CI recipes of the site are valid YAML using only options the harness has."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from ruamel.yaml import YAML

from conftest import REPO
from harness.cli import main

DOCS = REPO / "docs"


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_site_builds_strictly_without_a_warning(tmp_path: Path) -> None:
    proc = _build(REPO / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0 and "WARNING" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    pages = {p.stem for p in DOCS.glob("*.md")}
    assert {"getting-started", "run", "lint", "sql", "rehearse", "compat", "checks", "configuration", "reports", "ci",
            "versions", "troubleshooting", "cleanup", "speed", "real-apps"} <= pages
    assert all((tmp_path / "site" / ("" if p == "index" else p) / "index.html").is_file() for p in pages)


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """The check above can fail: a link to an anchor that no heading makes is refused."""
    shutil.copytree(DOCS, tmp_path / "docs")
    page = tmp_path / "docs" / "getting-started.md"
    page.write_text(page.read_text() + "\nSee [nowhere](run.md#no-such-heading).\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text((REPO / "mkdocs.yml").read_text())
    proc = _build(config, tmp_path / "site")
    assert proc.returncode != 0 and "no-such-heading" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_the_readme_is_short_and_its_links_land() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    links = re.findall(r"\]\(((?!https?:)[^)#]+)(?:#[^)]*)?\)", readme)
    assert links and all((REPO / link).exists() for link in links), [l for l in links if not (REPO / l).exists()]
    assert {f"docs/{p.name}" for p in DOCS.glob("*.md")} <= set(links), "a page the README does not link to"


def test_the_ci_recipes_are_valid_yaml_with_options_the_harness_has() -> None:
    text = (DOCS / "ci.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        YAML(typ="safe").load(block)
    for command in ("run", "merge", "lint", "sql", "compat"):
        used = set()
        for line in re.findall(rf"migration-harness {command}[^\n]*(?:\n\s+--[^\n]*)*", text):
            used |= set(re.findall(r"(--[a-z][a-z-]+)", re.sub(r"\$\([^)]*\)", "", line)))  # not git's
        helptext = CliRunner().invoke(main, [command, "--help"]).output  # in-process: five subprocesses take 9 s
        missing = sorted(o for o in used if o not in helptext)
        assert used and not missing, (command, missing)


def test_nox_installs_the_pinned_builder() -> None:
    """`nox -s docs` installs the same mkdocs pins as the test extra the suite runs with."""
    extra = re.search(r"^test = \[(.*?)\]", (REPO / "pyproject.toml").read_text(), re.S | re.M).group(1)
    nox_pins = re.search(r"^DOCS = \[(.*?)\]", (REPO / "noxfile.py").read_text(), re.M).group(1)
    assert re.findall(r'"(mkdocs[^"]*)"', nox_pins) == re.findall(r'"(mkdocs[^"]*)"', extra) != []
