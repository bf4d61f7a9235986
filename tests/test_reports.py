"""[ecosystem] reports for CI and for people: JUnit XML valid against the JUnit schema with the right failures,
Markdown for a passing and a failing run (and GitHub's step summary). Real runs on real databases."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import xmlschema

from projects import GOOD_MODELS, POSTS, USERS, good_chain, make_project

SCHEMA = xmlschema.XMLSchema(str(Path(__file__).parent / "schemas" / "junit.xsd"))
BROKEN_ON_MYSQL = [USERS, replace(POSTS, upgrade=POSTS.upgrade.replace("sa.String(length=200)", "sa.String()"))]


def test_junit_has_a_case_per_database_and_check_and_the_failure_where_it_is(harness, tmp_path: Path) -> None:
    junit = tmp_path / "out" / "junit.xml"
    run = harness(make_project(tmp_path / "p", BROKEN_ON_MYSQL, GOOD_MODELS), "--junit", str(junit),
                  "--checks", "upgrade,schema_matches_models,downgrade")
    assert run.exit_code == 1
    SCHEMA.validate(str(junit))  # raises with the reason when the report is not valid JUnit
    root = ET.parse(junit).getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"sqlite", "postgresql", "mysql"}
    cases = {(c.get("classname"), c.get("name")): c for s in suites.values() for c in s.findall("testcase")}
    assert len(cases) == 9 and root.get("tests") == "9"
    failure = cases[("mysql", "upgrade")].find("failure")
    assert failure is not None and "a002 (create posts)" in failure.get("message")
    assert failure.text.startswith("revision: a002") and "VARCHAR requires a length" in failure.text
    assert cases[("mysql", "downgrade")].find("skipped") is not None
    for dialect in ("sqlite", "postgresql"):
        assert list(cases[(dialect, "upgrade")]) == []  # passed: no child element
    assert suites["mysql"].get("failures") == "1" and suites["mysql"].get("skipped") == "2"
    assert root.get("failures") == "1"
    properties = {p.get("name"): p.get("value") for p in suites["postgresql"].iter("property")}
    assert properties["backend"] == "url" and properties["server"].startswith("PostgreSQL ")


def test_junit_of_a_database_that_could_not_be_provided(tmp_path: Path) -> None:
    from conftest import run_cli

    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    junit = tmp_path / "junit.xml"
    proc = run_cli(["run", "--app", "app:create_app", "--db", "sqlite,postgresql", "--junit", str(junit)], project,
                   {"HARNESS_POSTGRESQL_URL": "postgresql://postgres@127.0.0.1:1/postgres"})
    assert proc.returncode == 3
    SCHEMA.validate(str(junit))
    case = next(c for c in ET.parse(junit).getroot().iter("testcase") if c.get("classname") == "postgresql")
    assert case.get("name") == "(database)" and "cannot connect" in case.find("error").get("message")


def test_markdown_for_a_passing_and_a_failing_run(harness, tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    passing = tmp_path / "passing.md"
    run = harness(make_project(tmp_path / "good", good_chain(), GOOD_MODELS), "--markdown", str(passing),
                  "--checks", "upgrade,downgrade", db=("sqlite",), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert run.exit_code == 0
    text = passing.read_text()
    assert text.startswith("## migration-harness: ✅ every check passed")
    assert "| `upgrade` | ✅ passed |" in text and "What failed" not in text
    failing = tmp_path / "failing.md"
    run = harness(make_project(tmp_path / "bad", BROKEN_ON_MYSQL, GOOD_MODELS), "--markdown", str(failing),
                  "--checks", "upgrade", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert run.exit_code == 1
    text = failing.read_text()
    assert "❌ not ok (exit 1)" in text
    row = next(line for line in text.splitlines() if line.startswith("| `upgrade` |"))
    assert row.count("✅ passed") == 2 and "❌ failed at `a002`" in row
    assert "- **mysql · upgrade** at `a002`: upgrade to a002 (create posts) failed on mysql" in text
    # both runs were appended to GitHub's step summary, in order
    appended = summary.read_text()
    assert appended.index("✅ every check passed") < appended.index("❌ not ok (exit 1)")


def test_nox_migrations_session_is_one_run_with_one_report_set(tmp_path: Path) -> None:
    """``nox -s "migrations(db='sqlite')"``: one run of the harness in one virtualenv, and its JSON, JUnit and
    Markdown reports under reports/ (``nox -s migrations`` is the same over the three databases)."""
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO

    reports = REPO / "reports"
    for suffix in ("json", "xml", "md"):
        (reports / f"migrations-sqlite.{suffix}").unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "nox", "-s", "migrations(db='sqlite')", "--envdir",
                           str(tmp_path / "nox"), "--", "--checks", "upgrade,downgrade"], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.count("migration-harness run ") == 1  # one run
    report = json.loads((reports / "migrations-sqlite.json").read_text())
    assert report["ok"] is True and [d["dialect"] for d in report["databases"]] == ["sqlite"]
    SCHEMA.validate(str(reports / "migrations-sqlite.xml"))
    assert (reports / "migrations-sqlite.md").read_text().startswith("## migration-harness: ✅")


def test_flask_command_runs_the_harness_on_the_app_flask_loaded(tmp_path: Path, server_urls) -> None:
    """``flask --app … migrations-verify`` (entry point ``flask.commands``): the harness on the app ``flask`` was
    given, with the options of ``migration-harness run``, and its exit code."""
    import json
    import subprocess
    import sys

    from conftest import cli_env

    good = make_project(tmp_path / "good", good_chain(), GOOD_MODELS)
    bad = make_project(tmp_path / "bad", BROKEN_ON_MYSQL, GOOD_MODELS)
    env = {**cli_env(), "DATABASE_URL": f"sqlite:///{tmp_path / 'flask-cli.db'}"}  # what flask itself loads
    for project, dbs, expected in ((good, "sqlite", 0), (bad, "sqlite,mysql", 1)):
        report = tmp_path / f"{project.name}.json"
        proc = subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app", "migrations-verify",
                               "--db", dbs, "--checks", "upgrade", "--json", str(report)],
                              cwd=project, env={**env, "HARNESS_MYSQL_URL": server_urls["mysql"]},
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == expected, proc.stdout + proc.stderr
        assert json.loads(report.read_text())["exit_code"] == expected
    assert "upgrade to a002 (create posts) failed on mysql" in proc.stdout


def test_merge_of_single_database_reports_equals_one_run_over_all(harness, tmp_path: Path) -> None:
    """A nightly matrix's jobs, one database each, merged: the same verdicts, revisions and exit code as one run
    over the three databases; a dialect that appears twice (two server versions) stays two rows."""
    import json

    from conftest import run_cli

    project = make_project(tmp_path / "p", BROKEN_ON_MYSQL, GOOD_MODELS)
    args = ("--checks", "upgrade,downgrade")
    whole = harness(project, *args)
    parts = []
    for dialect in ("sqlite", "postgresql", "mysql"):
        part = harness(project, *args, db=(dialect,))
        path = tmp_path / f"{dialect}.json"
        path.write_text(json.dumps(part.report))
        parts.append(path)
    merged_json, junit = tmp_path / "merged.json", tmp_path / "merged.xml"
    proc = run_cli(["merge", *map(str, parts), "--json", str(merged_json), "--junit", str(junit)], tmp_path)
    assert proc.returncode == whole.exit_code == 1, proc.stdout + proc.stderr
    merged = json.loads(merged_json.read_text())

    def verdicts(report: dict) -> list:
        return [(d["dialect"], d["status"], [(c["name"], c["status"], c["revision"]) for c in d["checks"]])
                for d in report["databases"]]

    assert verdicts(merged) == verdicts(whole.report)
    assert merged["ok"] is False and merged["exit_code"] == 1 and merged["head"] == whole.report["head"]
    assert [job["run_id"] for job in merged["merged_from"]] == [json.loads(p.read_text())["run_id"] for p in parts]
    SCHEMA.validate(str(junit))
    # another job on an older PostgreSQL: both stay, named by version
    older = json.loads(parts[1].read_text())
    older["databases"][0]["server_version"] = "PostgreSQL 13.14"
    (tmp_path / "pg13.json").write_text(json.dumps(older))
    proc = run_cli(["merge", str(parts[1]), str(tmp_path / "pg13.json"), "--junit", str(junit)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = [s.get("name") for s in ET.parse(junit).getroot().findall("testsuite")]
    assert len(names) == 2 and names[1] == "postgresql 13.14" and names[0].startswith("postgresql 15")
    bad = run_cli(["merge", str(project / "app.py")], tmp_path)
    assert bad.returncode == 2 and "not a migration-harness JSON report" in bad.stderr


def test_pytest_plugin_an_item_per_database_and_check(tmp_path: Path, server_urls) -> None:
    """``pytest --migrations``: one item per database × check in the team's own pytest run; a broken chain fails
    exactly the item of the database and check that broke, with the revision and the database's error; ``-k``
    selects items."""
    import subprocess
    import sys

    from conftest import cli_env

    env = {**cli_env(), "HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"]}
    bad = make_project(tmp_path / "bad", BROKEN_ON_MYSQL, GOOD_MODELS)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--migrations", "--migrations-app", "app:create_app",
                           "--migrations-checks", "upgrade,downgrade", "-p", "no:cacheprovider", "-rA"],
                          cwd=bad, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED ::migrations[mysql-upgrade]" in proc.stdout
    assert "upgrade failed on mysql at revision a002" in proc.stdout and "VARCHAR requires a length" in proc.stdout
    assert "PASSED ::migrations[postgresql-upgrade]" in proc.stdout
    assert "1 failed, 4 passed, 1 skipped" in proc.stdout  # mysql's downgrade: skipped, the upgrade failed
    good = make_project(tmp_path / "good", good_chain(), GOOD_MODELS)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--migrations", "--migrations-app", "app:create_app",
                           "--migrations-checks", "upgrade", "-k", "sqlite", "-p", "no:cacheprovider", "-q"],
                          cwd=good, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "1 passed, 2 deselected" in proc.stdout, proc.stdout + proc.stderr


def test_a_root_cause_is_said_once(harness, tmp_path: Path) -> None:
    """The upgrade breaks at a003: the stairway and the data run stop at the same revision with the same error,
    and point back to the upgrade instead of repeating it (JSON same_as, the summary, Markdown)."""
    from projects import Rev

    broken = Rev("a003", "broken", "op.execute('SELECT * FROM no_such_table')", "pass")
    md = tmp_path / "r.md"
    run = harness(make_project(tmp_path / "p", good_chain() + [broken], GOOD_MODELS), "--markdown", str(md),
                  db=("sqlite", "postgresql"))
    for dialect in ("sqlite", "postgresql"):
        assert run.check(dialect, "upgrade")["same_as"] is None
        assert run.check(dialect, "stairway")["same_as"] == "upgrade"
        assert run.check(dialect, "data")["same_as"] == "upgrade"
        assert run.check(dialect, "stairway")["revision"] == "a003"
    assert "stairway at a003 (same as upgrade)" in run.stdout
    text = md.read_text()
    assert "**sqlite · data** at `a003`: the same error as `upgrade`" in text
    assert text.count(" failed on ") == 2  # the error once per database, at the upgrade


# -- the HTML report, rendered in headless Chromium --------------------------------------------------------------

CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium(page: Path, tmp_path: Path, *args: str) -> str:
    import subprocess

    proc = subprocess.run([*CHROMIUM, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _dom(text: str) -> ET.Element:
    """The DOM Chromium serialised (HTML, not XML) as an ElementTree."""
    from html.parser import HTMLParser

    void = {"meta", "br", "link", "img", "input", "hr", "col", "base", "wbr", "source"}

    class Builder(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.builder = ET.TreeBuilder()
            self.builder.start("document", {})

        def handle_starttag(self, tag: str, attrs: list) -> None:
            self.builder.start(tag, {k: v or "" for k, v in attrs})
            if tag in void:
                self.builder.end(tag)

        def handle_endtag(self, tag: str) -> None:
            if tag not in void:
                self.builder.end(tag)

        def handle_data(self, data: str) -> None:
            self.builder.data(data)

    parser = Builder()
    parser.feed(text)
    parser.builder.end("document")
    return parser.builder.close()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_html_report_draws_the_graph_and_the_failures(harness, tmp_path: Path) -> None:
    from test_chain import MERGE, TWO_HEADS_MODELS, branch

    chain = BROKEN_ON_MYSQL + [branch("a003", "tags"), branch("a004", "notes"), MERGE]
    page = tmp_path / "report.html"
    run = harness(make_project(tmp_path / "p", chain, TWO_HEADS_MODELS), "--html", str(page),
                  "--checks", "upgrade,downgrade,stairway")
    assert run.exit_code == 1 and "http" not in page.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
    dom = _dom(_chromium(page, tmp_path, "--dump-dom"))
    circles = list(dom.iter("circle"))
    assert sorted(c.get("data-revision") for c in circles) == ["a001", "a002", "a003", "a004", "a005"]
    assert [c.get("data-revision") for c in circles if c.get("class") == "merge"] == ["a005"]
    edges = [e for e in dom.iter("path") if e.get("class") == "edge"]
    assert len(edges) == 5  # a002→a001, a003→a002, a004→a002, and the merge's two
    rows = {r.get("data-revision"): r for r in dom.iter("tr") if r.get("data-revision")}
    order = list(rows)  # head first, parents below their children
    assert order[0] == "a005" and order[-2:] == ["a002", "a001"] and sorted(order[1:3]) == ["a003", "a004"]
    cell = {c.get("data-database"): c for c in rows["a002"].iter("td") if c.get("data-database")}
    assert "failed" in cell["mysql"].get("class") and "passed" in cell["sqlite"].get("class")
    assert cell["sqlite"].text.endswith("s")  # its steps' time
    failure = next(d for d in dom.iter("details") if d.get("data-database") == "mysql" and d.get("data-check") == "upgrade")
    assert failure.get("open") is not None and "VARCHAR requires a length" in "".join(failure.itertext())
    shot = tmp_path / "report.png"
    _chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1400,1000")
    assert _png_size(shot) == (1400, 1000) and shot.stat().st_size > 20_000


def test_html_report_stays_readable_for_200_revisions(tmp_path: Path) -> None:
    import sys

    from conftest import REPO, run_cli

    sys.path.insert(0, str(REPO / "benchmarks"))
    from chain_app import write_app

    project = tmp_path / "chain"
    write_app(project, 200)
    page = tmp_path / "report.html"
    proc = run_cli(["run", "--app", "app:create_app", "--db", "sqlite", "--checks", "upgrade", "--html", str(page)],
                   project)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    dom = _dom(_chromium(page, tmp_path, "--dump-dom"))
    rows = [r for r in dom.iter("tr") if r.get("data-revision")]
    assert len(rows) == 200 and all("passed" in c.get("class") for r in rows for c in r.iter("td")
                                    if c.get("data-database"))
    svg = next(dom.iter("svg"))
    assert int(svg.get("height")) == 200 * 24  # one fixed-height row per revision, the graph beside them
    shot = tmp_path / "report.png"
    _chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,5200")
    assert _png_size(shot) == (1200, 5200)


FIXTURE_TEST = '''
import pytest
import sqlalchemy as sa


@pytest.mark.parametrize("migration_database", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_the_schema_is_at_head(migration_database):
    engine = sa.create_engine(migration_database)
    with engine.connect() as conn:
        assert {"users", "posts"} <= set(sa.inspect(conn).get_table_names())
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "a002"
    engine.dispose()
'''


def test_the_migration_database_fixture_gives_a_scratch_database_at_head(tmp_path: Path, server_urls) -> None:
    """A team's own test asks for ``migration_database`` and gets the URL of a fresh scratch database at head, on
    each database it parametrizes; the databases are dropped afterwards."""
    import subprocess
    import sys

    from conftest import cli_env, scratch_leftovers

    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "test_fixture.py").write_text(FIXTURE_TEST)
    env = {**cli_env(), "HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"]}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--migrations-app",
                           "app:create_app"], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "3 passed" in proc.stdout, proc.stdout + proc.stderr
    for dialect in ("postgresql", "mysql"):
        assert not [d for d in scratch_leftovers(server_urls[dialect]) if d.startswith(f"mharness_{env['HARNESS_RUN_ID']}_")]


def test_nox_migrations_provisions_missing_images_with_ci_setup(tmp_path: Path) -> None:
    """No image given and the default one cannot be pulled (no registry here): the session says so in one line,
    runs ci/setup.sh (as root with apt, as on CI machines), and the run goes on to a verdict on PostgreSQL."""
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_POSTGRESQL_IMAGE", "HARNESS_POSTGRESQL_URL")}
    env["HARNESS_POSTGRESQL_IMAGE"] = "postgres:0.0-mharness-not-pullable"  # like postgres:16 with no registry
    proc = subprocess.run([sys.executable, "-m", "nox", "-s", "migrations(db='postgresql')", "--envdir",
                           str(tmp_path / "nox"), "--", "--checks", "upgrade"], cwd=REPO,
                          capture_output=True, text=True, timeout=900, env={**env, "PYTHONPATH": ""})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "image(s) postgres:0.0-mharness-not-pullable cannot be pulled: running ci/setup.sh" in out
    report = json.loads((REPO / "reports" / "migrations-postgresql.json").read_text())
    assert report["ok"] is True and report["databases"][0]["backend"] == "container"
