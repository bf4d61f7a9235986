"""[ecosystem] the nightly workflow: valid for GitHub (the workflow JSON schema that check-jsonschema ships), the
matrix docs/ci.md promises, and every harness option it uses is one the harness has. The workflow itself only
runs on GitHub."""
from __future__ import annotations

import re
import subprocess
import sysconfig
from pathlib import Path

from ruamel.yaml import YAML

from conftest import REPO, run_cli

WORKFLOW = REPO / ".github" / "workflows" / "nightly.yml"
PULL_REQUEST = REPO / ".github" / "workflows" / "migrations-pr.yml"


def _check_jsonschema() -> str:
    return str(Path(sysconfig.get_path("scripts")) / "check-jsonschema")


def test_the_workflows_are_valid_for_github() -> None:
    proc = subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW),
                           str(PULL_REQUEST)], capture_output=True, text=True)
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


def test_the_pull_request_workflow_annotates_and_keeps_the_sql() -> None:
    workflow = YAML(typ="safe").load(PULL_REQUEST.read_text())
    steps = " ".join(str(s.get("run", "")) for s in workflow["jobs"]["lint"]["steps"])
    assert "migration-harness lint" in steps and "--format github" in steps
    assert "migration-harness sql" in steps and "--sql-dir reports/sql" in steps
    assert set(workflow["on"]["pull_request"]["paths"]) >= {"migrations/**"}


def test_every_harness_option_the_workflows_use_exists(tmp_path: Path) -> None:
    text = WORKFLOW.read_text() + PULL_REQUEST.read_text()
    for command in ("run", "merge", "lint", "sql", "compat"):
        used = set()
        for line in re.findall(rf"migration-harness {command}[^\n]*(?:\n\s+--[^\n]*)*", text):
            used |= set(re.findall(r"(--[a-z][a-z-]+)", line))
        helptext = run_cli([command, "--help"], tmp_path).stdout
        missing = sorted(o for o in used if o not in helptext)
        assert used and not missing, (command, missing)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_docker_compose_up_the_harness_through_the_url_variables_down(tmp_path: Path) -> None:
    """docker-compose.yml for real (Debian's docker-compose, the local images): up, the harness on its servers
    through HARNESS_*_URL, down. A project name and ports of its own: other runs may share the engine."""
    import os
    import secrets
    import time

    from projects import GOOD_MODELS, good_chain, make_project

    name = f"mharnesscompose{secrets.token_hex(4)}"
    ports = {"postgresql": _free_port(), "mysql": _free_port()}
    env = {**os.environ, "HARNESS_COMPOSE_POSTGRESQL_PORT": str(ports["postgresql"]),
           "HARNESS_COMPOSE_MYSQL_PORT": str(ports["mysql"])}
    compose = ["docker-compose", "-p", name, "-f", str(REPO / "docker-compose.yml")]
    up = subprocess.run([*compose, "up", "-d"], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        ids = subprocess.run([*compose, "ps", "-q"], env=env, capture_output=True, text=True).stdout.split()
        assert len(ids) == 2
        deadline = time.monotonic() + 180
        while True:  # both healthchecks pass (docker-compose 1.29 has no --wait)
            states = [subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}", i], capture_output=True,
                                     text=True).stdout.strip() for i in ids]
            if states == ["healthy", "healthy"]:
                break
            assert time.monotonic() < deadline, states
            time.sleep(1)
        project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
        urls = {"HARNESS_POSTGRESQL_URL": f"postgresql://postgres:postgres@127.0.0.1:{ports['postgresql']}/postgres",
                "HARNESS_MYSQL_URL": f"mysql://root:root@127.0.0.1:{ports['mysql']}/"}
        run = run_cli(["run", "--app", "app:create_app", "--db", "postgresql,mysql", "--checks", "upgrade,downgrade",
                       "-q"], project, urls)
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        down = subprocess.run([*compose, "down", "-v"], env=env, capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={name}"],
                          capture_output=True, text=True).stdout.split()
    assert left == []
