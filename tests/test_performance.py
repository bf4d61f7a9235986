"""[performance] what makes a run fast without changing a verdict: throwaway containers without durability (and
only those), ... Timings themselves are measured by benchmarks/, never asserted here."""
from __future__ import annotations

import json
from pathlib import Path

from projects import GOOD_MODELS, Rev, good_chain, make_project

RECORD = Rev("a003", "record server settings", """
    import json, os
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        settings = {name: conn.execute(sa.text(f"SHOW {name}")).scalar()
                    for name in ("fsync", "synchronous_commit", "full_page_writes")}
    else:
        settings = {"flush": str(conn.execute(sa.text("SELECT @@innodb_flush_log_at_trx_commit")).scalar()),
                    "log_bin": str(conn.execute(sa.text("SELECT @@log_bin")).scalar())}
    with open(os.environ["HARNESS_TEST_RECORD"], "a") as out:
        out.write(json.dumps({"dialect": conn.dialect.name, **settings}) + "\\n")
""", "pass")


def _recorded(path: Path) -> dict[str, dict]:
    return {r["dialect"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_containers_run_without_durability(harness, tmp_path: Path) -> None:
    record = tmp_path / "settings.jsonl"
    run = harness(make_project(tmp_path / "p", good_chain() + [RECORD], GOOD_MODELS), "--checks", "upgrade",
                  db=("postgresql", "mysql"), use_servers=False,
                  env={"HARNESS_POSTGRESQL_URL": "", "HARNESS_MYSQL_URL": "", "HARNESS_TEST_RECORD": str(record)})
    assert run.exit_code == 0, run.stdout + run.stderr
    seen = _recorded(record)
    assert seen["postgresql"] == {"dialect": "postgresql", "fsync": "off", "synchronous_commit": "off",
                                  "full_page_writes": "off"}
    assert (seen["mysql"]["flush"], seen["mysql"]["log_bin"]) == ("0", "0")


def test_a_server_given_by_url_is_left_as_it_is(harness, tmp_path: Path, server_urls) -> None:
    """The harness never changes the settings of a server it did not start (the session's servers keep their
    durability, whatever it is: here the same values before and after)."""
    record = tmp_path / "settings.jsonl"
    project = make_project(tmp_path / "p", good_chain() + [RECORD], GOOD_MODELS)
    run = harness(project, "--checks", "upgrade", db=("postgresql",), env={"HARNESS_TEST_RECORD": str(record)})
    assert run.exit_code == 0, run.stdout + run.stderr
    import sqlalchemy as sa
    engine = sa.create_engine(server_urls["postgresql"])
    with engine.connect() as conn:
        fsync = conn.execute(sa.text("SHOW fsync")).scalar()
    engine.dispose()
    assert _recorded(record)["postgresql"]["fsync"] == fsync


def test_every_step_is_timed_in_the_report(harness, tmp_path: Path) -> None:
    run = harness(make_project(tmp_path / "p", good_chain(), GOOD_MODELS), db=("sqlite", "mysql"))
    assert run.exit_code == 0, run.stdout + run.stderr
    for dialect in ("sqlite", "mysql"):
        steps = run.database(dialect)["steps"]
        by_check: dict[str, list[tuple[str, str]]] = {}
        for step in steps:
            assert step["duration_s"] >= 0 and step["passed"] is True
            by_check.setdefault(step["check"], []).append((step["direction"], step["revision"]))
        assert by_check["upgrade"] == [("up", "a001"), ("up", "a002")]
        assert by_check["downgrade"] == [("down", "a002"), ("down", "a001")]
        assert by_check["stairway"] == [("up", "a001"), ("down", "a001"), ("up", "a001"),
                                        ("up", "a002"), ("down", "a002"), ("up", "a002")]
        assert by_check["data"] == [("up", "a001"), ("up", "a002")]
    assert "slowest steps:" in run.stdout
