"""[speed] The cuts of the second pass, each shown to keep what it replaced: a renewed PostgreSQL scratch database
(made in the background, renamed in) is as fresh as a new one and leaves nothing; rows are counted in one
statement, also past the chunk size; env.py compiled once is still re-read when it changes; the worker exits at
once after ``done`` and its exit handlers still run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from conftest import scratch_leftovers
from harness.backends import get_backend
from harness.backends.base import new_run_id
from harness.config import DatabaseSettings
from harness.datagen import count_rows


def test_a_renewed_postgresql_scratch_database_is_fresh_and_nothing_is_left(server_urls) -> None:
    run_id = new_run_id()
    backend = get_backend("postgresql")
    with backend.server(DatabaseSettings("postgresql", url=server_urls["postgresql"]), run_id) as server:
        with server.scratch_database() as url:
            for round in range(3):
                engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
                with engine.begin() as conn:
                    assert sa.inspect(conn).get_table_names() == []  # nothing of the round before
                    conn.execute(sa.text(f"CREATE TABLE t{round} (id INTEGER PRIMARY KEY)"))
                engine.dispose()
                server.prepare_renewal()
                time.sleep(0.2)  # the spare is made meanwhile (renew waits for it when it is not)
                assert server.renew(url)
            server.prepare_renewal()  # one that no renew takes: dropped with the scratch database
        assert server.leftovers == []
    assert [n for n in scratch_leftovers(server_urls["postgresql"]) if n.startswith(f"mharness_{run_id}_")] == []


def test_a_renew_while_someone_is_still_connected_drops_the_database_as_before(server_urls) -> None:
    run_id = new_run_id()
    backend = get_backend("postgresql")
    with backend.server(DatabaseSettings("postgresql", url=server_urls["postgresql"]), run_id) as server:
        with server.scratch_database() as url:
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
            conn = engine.connect()  # a worker killed mid-step: its backend still holds the database
            conn.execute(sa.text("CREATE TABLE left_behind (id INTEGER)"))
            conn.commit()
            server.prepare_renewal()
            assert server.renew(url)
            conn.close()
            with engine.connect() as fresh:
                assert sa.inspect(fresh).get_table_names() == []
            engine.dispose()
    assert [n for n in scratch_leftovers(server_urls["postgresql"]) if n.startswith(f"mharness_{run_id}_")] == []


def test_rows_are_counted_in_one_statement_past_the_chunk_size(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'many.db'}")
    with engine.begin() as conn:
        for i in range(130):  # more than one chunk of the UNION ALL
            conn.execute(sa.text(f'CREATE TABLE "t {i}" (id INTEGER)'))
            for k in range(i % 5):
                conn.execute(sa.text(f'INSERT INTO "t {i}" (id) VALUES ({k})'))
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
    with engine.connect() as conn:
        counts = count_rows(conn)
    assert counts == {f"t {i}": i % 5 for i in range(130)}


def test_env_py_compiled_once_is_read_again_when_it_changes(tmp_path: Path) -> None:
    from harness.chain.steps import run_env

    class Script:
        dir = str(tmp_path)

    env_py = tmp_path / "env.py"
    seen: list[str] = []
    sys.modules["mharness_seen"] = type(sys)("mharness_seen")
    sys.modules["mharness_seen"].seen = seen  # type: ignore[attr-defined]
    env_py.write_text("import mharness_seen\nmharness_seen.seen.append('one')\n")
    run_env(Script())
    run_env(Script())
    env_py.write_text("import mharness_seen\nmharness_seen.seen.append('two, longer')\n")
    run_env(Script())
    assert seen == ["one", "one", "two, longer"]


def test_the_worker_runs_its_exit_handlers_and_exits_at_once_after_done(tmp_path: Path) -> None:
    from harness.run.process import worker_command

    marker = tmp_path / "atexit.txt"
    app = tmp_path / "exitapp.py"
    app.write_text(f"import atexit\natexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n\n\n"
                   "def create_app():\n    raise RuntimeError('no app here')\n")
    spec = {"run_id": "exittest", "app": "exitapp:create_app", "migrations": None, "url": "sqlite:///:memory:",
            "dialect": "sqlite", "mode": "inspect", "bind_directory": str(tmp_path)}
    proc = subprocess.run(worker_command(), input=json.dumps(spec) + "\n", capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, env={**os.environ, "PYTHONPATH": ""})
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events] == ["fatal", "done"] and proc.returncode == 0, proc.stderr
    assert "no app here" in events[0]["message"]
    assert marker.read_text() == "ran"
