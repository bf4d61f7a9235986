"""[ecosystem] the nightly workflow: valid for GitHub (the workflow JSON schema that check-jsonschema ships), the
matrix the README promises, and every harness option it uses is one the harness has. The workflow itself only
runs on GitHub."""
from __future__ import annotations

import re
import subprocess
import sysconfig
from pathlib import Path

from ruamel.yaml import YAML

from conftest import REPO, run_cli

WORKFLOW = REPO / ".github" / "workflows" / "nightly.yml"


def _check_jsonschema() -> str:
    return str(Path(sysconfig.get_path("scripts")) / "check-jsonschema")


def test_the_workflow_is_valid_for_github() -> None:
    proc = subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_broken_workflow_is_caught(tmp_path: Path) -> None:
    """The check above can fail: a step with neither `run` nor `uses` is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("      - name: Install\n        run:", "      - name: Install\n        runs:"))
    proc = subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(broken)],
                          capture_output=True, text=True)
    assert proc.returncode != 0


def test_the_matrix_and_the_verdict_job() -> None:
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    matrix = workflow["jobs"]["verify"]["strategy"]["matrix"]
    images = {d["image"] for d in matrix["database"] if d["image"]}
    assert {f"postgres:{v}" for v in range(13, 18)} <= images
    assert {"mysql:8.0", "mysql:8.4", "mariadb:10.11"} <= images and any(i.startswith("mariadb:11") for i in images)
    assert {"3.9", "3.13"} <= set(matrix["python"])
    assert workflow["jobs"]["verdict"]["needs"] == "verify" and workflow["jobs"]["verdict"]["if"] == "always()"
    steps = " ".join(str(s.get("run", "")) for s in workflow["jobs"]["verdict"]["steps"])
    assert "migration-harness merge reports/*.json" in steps


def test_every_harness_option_the_workflow_uses_exists(tmp_path: Path) -> None:
    text = WORKFLOW.read_text()
    for command in ("run", "merge"):
        used = set()
        for line in re.findall(rf"migration-harness {command}[^\n]*(?:\n\s+--[^\n]*)*", text):
            used |= set(re.findall(r"(--[a-z][a-z-]+)", line))
        helptext = run_cli([command, "--help"], tmp_path).stdout
        missing = sorted(o for o in used if o not in helptext)
        assert used and not missing, (command, missing)
