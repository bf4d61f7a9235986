"""[speed] One app load per database (every session of a database through one worker, each on a fresh scratch
database), the stairway pass serving as the step-wise upgrade, and ``--since REF`` (a pre-push run checks only the
revisions added or changed since a git ref), against real databases and a real git repository."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import run_containers
from projects import GOOD_MODELS, OWN_ENGINE_ENV, Rev, good_chain, make_project
from test_real_apps import DOMAIN_MODELS, DOMAINS, _lowercase

ALL = ("sqlite", "postgresql", "mysql")

#: the app's factory notes every load (the database it was loaded on) in $HARNESS_TEST_LOADS
COUNTING = '''

_create_app = create_app


def create_app(config=None):
    if os.environ.get("HARNESS_TEST_LOADS"):
        with open(os.environ["HARNESS_TEST_LOADS"], "a") as f:
            f.write(os.environ["DATABASE_URL"].split(":")[0].split("+")[0] + "\\n")
    return _create_app(config)
'''

#: a factory whose start-up writes to the database (some run create_all() or upgrade() there)
WRITES_AT_START_UP = '''
    import sqlalchemy as _sa
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(_sa.text("CREATE TABLE started_here (id INTEGER PRIMARY KEY)"))
'''

COMMENTS = Rev("a003", "create comments", """
    op.create_table("comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name=op.f("fk_comments_post_id_posts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")))
""", 'op.drop_table("comments")')
COMMENTS_MODELS = GOOD_MODELS + '''

class Comment(db.Model):
    __tablename__ = "comments"
    id = db.Column(sa.Integer, primary_key=True)
    post_id = db.Column(sa.Integer, sa.ForeignKey("posts.id"), nullable=False)
'''
#: forgets to drop its index on the way down: the stairway fails at it
LEAKY = Rev("a004", "index comments by post", """
    with op.batch_alter_table("comments") as batch_op:
        batch_op.create_index("ix_comments_post_id", ["post_id"], unique=False)
""", "pass")
LEAKY_MODELS = COMMENTS_MODELS.replace('sa.ForeignKey("posts.id"), nullable=False)\n',
                                       'sa.ForeignKey("posts.id"), nullable=False, index=True)\n')


def counting_project(root: Path, revisions: list[Rev], models: str, start_up: str = "") -> Path:
    project = make_project(root, revisions, models)
    app_py = project / "app.py"
    text = app_py.read_text()
    if start_up:
        text = text.replace("    import models  # noqa: F401\n", "    import models  # noqa: F401\n" + start_up)
    app_py.write_text(text + COUNTING)
    return project


def loads(path: Path) -> dict[str, int]:
    lines = path.read_text().split() if path.exists() else []
    return {name: lines.count(name) for name in sorted(set(lines))}


def test_every_check_on_three_databases_loads_the_app_once_per_database_and_once_before(harness,
                                                                                      tmp_path: Path) -> None:
    record = tmp_path / "loads.txt"
    run = harness(counting_project(tmp_path / "p", good_chain(), GOOD_MODELS), env={"HARNESS_TEST_LOADS": str(record)})
    assert run.exit_code == 0, run.stdout + run.stderr
    assert all(run.statuses(name) == {d: "passed" for d in ALL} for name in
               ("upgrade", "schema_matches_models", "no_pending_autogenerate", "downgrade", "leaves_no_trace",
                "stairway", "data"))
    # the preflight (on a SQLite file of its own), whose worker then serves SQLite's sessions on that file, and
    # one worker per other database for all its sessions: one load per database
    assert loads(record) == {"sqlite": 1, "postgresql": 1, "mysql": 1}
    # the report lists the checks in their usual order, and the upgrade's steps (shared with the stairway's
    # first ups, timed once) are still there
    names = [c["name"] for c in run.database("postgresql")["checks"]]
    assert names == ["single_head", "upgrade", "schema_matches_models", "no_pending_autogenerate", "downgrade",
                     "leaves_no_trace", "stairway", "data"]
    upgrade = [(s["direction"], s["revision"]) for s in run.database("mysql")["steps"] if s["check"] == "upgrade"]
    assert upgrade == [("up", "a001"), ("up", "a002")]


#: a sitecustomize that writes "<pid> <parent's pid> <what>" to $HARNESS_TEST_STARTS whenever an interpreter starts:
#: a fork server, a worker of its own, or something else (the harness itself, its probe of --python)
STARTS = """
import os
if os.environ.get("HARNESS_TEST_STARTS"):
    with open("/proc/self/cmdline", "rb") as f:
        command = f.read()
    what = ("server" if b"harness.run.forkserver" in command else "worker" if b"harness.run.floor" in command
            else "other")
    with open(os.environ["HARNESS_TEST_STARTS"], "a") as f:
        f.write(f"{os.getpid()} {os.getppid()} {what}\\n")
"""


def interpreters(starts: Path) -> dict[str, list[tuple[int, int]]]:
    """What :data:`STARTS` recorded: (pid, parent's pid) of each start, by what started."""
    found: dict[str, list[tuple[int, int]]] = {"server": [], "worker": [], "other": []}
    for line in starts.read_text().splitlines():
        pid, parent, what = line.split()
        found[what].append((int(pid), int(parent)))
    return found


def test_a_run_starts_the_apps_interpreter_once_and_forks_every_worker_from_it(harness, tmp_path: Path) -> None:
    """The preflight and each database's worker are forked from one fork server, which imported SQLAlchemy,
    alembic and Flask once; each still loads the app itself, on its own database. The server is gone when the run
    is."""
    site, starts, record = tmp_path / "site", tmp_path / "starts.txt", tmp_path / "loads.txt"
    site.mkdir()
    (site / "sitecustomize.py").write_text(STARTS)
    run = harness(counting_project(tmp_path / "p", good_chain(), GOOD_MODELS),
                  env={"PYTHONPATH": str(site), "HARNESS_TEST_STARTS": str(starts), "HARNESS_TEST_LOADS": str(record)})
    assert run.exit_code == 0, run.stdout + run.stderr
    assert loads(record) == {"sqlite": 1, "postgresql": 1, "mysql": 1}
    started = interpreters(starts)
    assert len(started["server"]) == 1 and started["worker"] == [], started
    [(server, _)] = started["server"]
    assert not Path(f"/proc/{server}").exists(), "the fork server outlived the run"


def test_without_the_fork_server_each_worker_starts_an_interpreter_of_its_own(harness, tmp_path: Path) -> None:
    """HARNESS_FORKSERVER=0: the same run, the same verdicts, one interpreter per worker."""
    site, starts = tmp_path / "site", tmp_path / "starts.txt"
    site.mkdir()
    (site / "sitecustomize.py").write_text(STARTS)
    run = harness(make_project(tmp_path / "p", good_chain(), GOOD_MODELS),
                  env={"PYTHONPATH": str(site), "HARNESS_TEST_STARTS": str(starts), "HARNESS_FORKSERVER": "0"})
    assert run.exit_code == 0, run.stdout + run.stderr
    started = interpreters(starts)
    assert started["server"] == [] and len(started["worker"]) == 3, started  # the preflight, PostgreSQL, MySQL


def test_an_environment_too_large_for_the_fork_server_starts_each_worker_on_its_own(harness, tmp_path: Path) -> None:
    """300 kB of environment does not fit in one message to the fork server: every worker then starts an
    interpreter of its own, and the run is the same."""
    site, starts = tmp_path / "site", tmp_path / "starts.txt"
    site.mkdir()
    (site / "sitecustomize.py").write_text(STARTS)
    big = {f"HARNESS_TEST_BIG_{i}": "x" * 100_000 for i in range(3)}
    run = harness(make_project(tmp_path / "p", good_chain(), GOOD_MODELS), db=("sqlite", "postgresql"),
                  env={"PYTHONPATH": str(site), "HARNESS_TEST_STARTS": str(starts), **big})
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.statuses("data") == {"sqlite": "passed", "postgresql": "passed"}
    started = interpreters(starts)
    assert len(started["worker"]) == 2, started  # the preflight (then SQLite's), PostgreSQL's


def test_a_fork_server_with_no_worker_left_ends_by_itself(monkeypatch, tmp_path: Path) -> None:
    """In a process that lives on after its runs (pytest with the plugin), a fork server whose workers have all
    ended goes by itself; the worker's exit status came from it (this worker read no spec: exit 1)."""
    import sys
    import time

    from harness.run import forks

    monkeypatch.setattr(forks, "_LINGER_S", 0.5)
    worker = forks.launch([sys.executable, "-c", "unused when forked"], str(tmp_path), dict(os.environ))
    worker.stdin.close()
    assert worker.wait(timeout=120) == 1, worker.stderr.read()
    [server] = [s for key, s in list(forks._SERVERS.items()) if key[1] == os.path.realpath(tmp_path)]
    assert server.usable and Path(f"/proc/{server.proc.pid}").exists()
    deadline = time.monotonic() + 30
    while server.proc.poll() is None:
        assert time.monotonic() < deadline, "the idle fork server did not end"
        time.sleep(0.1)
    assert server.key not in forks._SERVERS


def test_a_fork_server_that_never_gets_ready_is_given_up(monkeypatch, tmp_path: Path) -> None:
    """Its imports hang (here a sitecustomize that sleeps in the fork server only): the worker starts as a process
    of its own after the wait, the server is stopped, and the next worker of that key does not wait for one."""
    import sys
    import time

    from harness.run import forks

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import time\nif b'harness.run.forkserver' in open('/proc/self/cmdline', 'rb').read():\n    time.sleep(60)\n")
    monkeypatch.setattr(forks, "_READY_S", 1.0)
    env = {**os.environ, "PYTHONPATH": str(site)}
    started = time.monotonic()
    worker = forks.launch([sys.executable, "-c", "import sys; sys.exit(7)"], str(tmp_path), env)
    assert worker.wait(timeout=60) == 7  # the command itself ran: no fork server served it
    assert time.monotonic() - started < 30
    [key] = [k for k in forks._REFUSED if k[1] == os.path.realpath(tmp_path)]
    assert key not in forks._SERVERS
    again = forks.launch([sys.executable, "-c", "import sys; sys.exit(8)"], str(tmp_path), env)
    assert again.wait(timeout=10) == 8


def test_a_process_forked_from_the_harness_starts_fork_servers_of_its_own(tmp_path: Path) -> None:
    """A process forked from one that has a fork server (multiprocessing in a test suite using the plugin) must not
    talk to it over its parent's socket: it starts with none."""
    import sys

    from harness.run import forks

    worker = forks.launch([sys.executable, "-c", "unused when forked"], str(tmp_path), dict(os.environ))
    worker.stdin.close()
    worker.wait(timeout=120)
    assert any(key[1] == os.path.realpath(tmp_path) for key in list(forks._SERVERS))
    child = os.fork()
    if child == 0:  # pragma: no cover - the forked test process
        os._exit(0 if not forks._SERVERS else 1)
    _, status = os.waitpid(child, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the forked process kept its parent's fork servers"


def test_the_null_probes_of_the_data_check_reuse_the_worker(harness, tmp_path: Path) -> None:
    record = tmp_path / "loads.txt"
    project = counting_project(tmp_path / "p", [DOMAINS, _lowercase("note")], DOMAIN_MODELS)
    run = harness(project, "--checks", "data", db=("sqlite", "postgresql"), env={"HARNESS_TEST_LOADS": str(record)})
    assert run.exit_code == 1, run.stdout + run.stderr
    for dialect in ("sqlite", "postgresql"):
        check = run.check(dialect, "data")
        assert (check["status"], check["revision"]) == ("failed", "d002")
        assert "it fails only when alternative.note is NULL, which the schema allows" in check["message"]
    assert loads(record) == {"sqlite": 1, "postgresql": 1}


def test_a_stairway_that_fails_leaves_the_chain_checks_their_own_pass(harness, tmp_path: Path) -> None:
    """The merged pass stops where the stairway fails; the upgrade and the checks after it then run on a fresh
    database as before, so their verdicts are what they were (here: the chain itself is fine)."""
    record = tmp_path / "loads.txt"
    project = counting_project(tmp_path / "p", good_chain() + [COMMENTS, LEAKY], LEAKY_MODELS)
    run = harness(project, env={"HARNESS_TEST_LOADS": str(record)})
    assert run.exit_code == 1, run.stdout + run.stderr
    assert run.statuses("stairway") == {d: "failed" for d in ALL}
    assert {run.check(d, "stairway")["revision"] for d in ALL} == {"a004"}
    for name in ("upgrade", "schema_matches_models", "downgrade", "leaves_no_trace", "data"):
        assert run.statuses(name) == {d: "passed" for d in ALL}, (name, run.stdout)
    upgrade = [(s["direction"], s["revision"]) for s in run.database("sqlite")["steps"] if s["check"] == "upgrade"]
    assert upgrade == [("up", "a001"), ("up", "a002"), ("up", "a003"), ("up", "a004")]
    assert loads(record) == {"sqlite": 1, "postgresql": 1, "mysql": 1}


#: a sitecustomize that writes "<dialect> <table>" to $HARNESS_TEST_REFLECTED whenever the Inspector reflects a
#: table's columns (every reflection of a table starts there): in the workers, which are forked from an interpreter
#: that ran it
REFLECTIONS = """
import os
if os.environ.get("HARNESS_TEST_REFLECTED"):
    from sqlalchemy.engine import reflection

    _get_columns = reflection.Inspector.get_columns

    def get_columns(self, table_name, *args, **kw):
        with open(os.environ["HARNESS_TEST_REFLECTED"], "a") as f:
            f.write(f"{self.dialect.name} {table_name}\\n")
        return _get_columns(self, table_name, *args, **kw)

    reflection.Inspector.get_columns = get_columns
"""

#: a correct revision whose second upgrade makes its index another way than the first, in what the catalogue
#: says (PostgreSQL: a partial index; MySQL/MariaDB: a prefix) and reflection does not (the same name, columns
#: and uniqueness): the downgrade leaves a row behind, the upgrade looks for it
HIDDEN = Rev("a003", "index user names", """
    again = op.get_bind().execute(sa.text("SELECT count(*) FROM users WHERE name = 'downgraded'")).scalar()
    op.create_index("ix_users_name", "users", ["name"], unique=False,
                    postgresql_where=sa.text("name <> ''") if again else None, mysql_length=40 if again else None)
""", """
    op.drop_index("ix_users_name", table_name="users")
    op.execute("INSERT INTO users (id, name) VALUES (99, 'downgraded')")
""")


def test_the_stairway_compares_the_catalogue_and_reflects_only_where_it_differs(harness, tmp_path: Path) -> None:
    """On PostgreSQL and MySQL/MariaDB the stairway compares each revision's two upgrades by the catalogue (the
    tables' fingerprints and the other objects) and reflects nothing when it is the same; SQLite, whose
    fingerprints are the statements as written, reflects as before. Where the catalogue differs and reflection
    may not (here an index's predicate or prefix, which the compared schema does not hold), the session runs
    again reflecting every state, so the verdict is the reflected comparison's: passed, as it always was, and
    the report holds that session's steps once."""
    site, reflected = tmp_path / "site", tmp_path / "reflected.txt"
    site.mkdir()
    (site / "sitecustomize.py").write_text(REFLECTIONS)
    env = {"PYTHONPATH": str(site), "HARNESS_TEST_REFLECTED": str(reflected)}

    def reflections() -> dict[str, int]:
        lines = reflected.read_text().splitlines() if reflected.exists() else []
        reflected.unlink(missing_ok=True)
        return {d: sum(1 for line in lines if line.split()[0] in (d, "mariadb" if d == "mysql" else d)) for d in ALL}

    run = harness(make_project(tmp_path / "p", good_chain(), GOOD_MODELS), "--checks", "stairway", env=env)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.statuses("stairway") == {d: "passed" for d in ALL}
    counted = reflections()
    assert counted["postgresql"] == counted["mysql"] == 0 and counted["sqlite"] > 0, counted

    models = GOOD_MODELS.replace("name = db.Column(sa.String(80), nullable=False)",
                                 "name = db.Column(sa.String(80), nullable=False, index=True)")
    run = harness(make_project(tmp_path / "q", good_chain() + [HIDDEN], models), "--checks", "stairway",
                  db=("postgresql", "mysql"), env=env)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.statuses("stairway") == {"postgresql": "passed", "mysql": "passed"}
    counted = reflections()
    assert counted["postgresql"] > 0 and counted["mysql"] > 0, counted
    for dialect in ("postgresql", "mysql"):
        walked = [(s["direction"], s["revision"]) for s in run.database(dialect)["steps"] if s["check"] == "stairway"]
        assert walked == [(d, r) for r in ("a001", "a002", "a003") for d in ("up", "down", "up")], walked


#: a correct revision that makes its two indexes in one order the first time and in the other the second (alembic
#: makes a new table's indexes in the order of a Python set, so a real one can do so by chance)
REORDERED = Rev("a003", "index users twice", """
    again = op.get_bind().execute(sa.text("SELECT count(*) FROM users WHERE name = 'downgraded'")).scalar()
    for name in (("ix_users_name", "ix_users_name_id") if again else ("ix_users_name_id", "ix_users_name")):
        op.create_index(name, "users", ["name", "id"] if name.endswith("_id") else ["name"], unique=False)
""", """
    op.drop_index("ix_users_name", table_name="users")
    op.drop_index("ix_users_name_id", table_name="users")
    op.execute("INSERT INTO users (id, name) VALUES (99, 'downgraded')")
""")


def test_the_order_a_table_s_indexes_were_made_in_does_not_send_the_stairway_back(harness, tmp_path: Path) -> None:
    """MariaDB lists a table's indexes in the order they were made; the fingerprint does not depend on it, so a
    revision that makes the same indexes in another order the second time passes the stairway by the catalogue,
    with no session of reflection (as privacyIDEA's c8d9e0f1a2b3 does by chance, its indexes from a set)."""
    site, reflected = tmp_path / "site", tmp_path / "reflected.txt"
    site.mkdir()
    (site / "sitecustomize.py").write_text(REFLECTIONS)
    models = GOOD_MODELS.replace('__tablename__ = "users"\n', '__tablename__ = "users"\n'
                                 '    __table_args__ = (sa.Index("ix_users_name_id", "name", "id"),)\n').replace(
        "name = db.Column(sa.String(80), nullable=False)", "name = db.Column(sa.String(80), nullable=False, index=True)")
    run = harness(make_project(tmp_path / "p", good_chain() + [REORDERED], models), "--checks", "stairway",
                  db=("postgresql", "mysql"), env={"PYTHONPATH": str(site), "HARNESS_TEST_REFLECTED": str(reflected)})
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.statuses("stairway") == {"postgresql": "passed", "mysql": "passed"}
    assert not reflected.exists(), reflected.read_text()


def test_an_app_that_writes_at_start_up_gets_a_load_per_session(harness, tmp_path: Path) -> None:
    """A factory that creates a table at start-up: each session's fresh database gets what a fresh load does
    there, as with a worker per session (here leaves_no_trace sees the table made before the baseline)."""
    record = tmp_path / "loads.txt"
    project = counting_project(tmp_path / "p", good_chain(), GOOD_MODELS, start_up=WRITES_AT_START_UP)
    run = harness(project, "--checks", "upgrade,stairway,data", db=("sqlite", "postgresql"),
                  env={"HARNESS_TEST_LOADS": str(record)})
    assert run.exit_code == 0, run.stdout + run.stderr
    # the preflight's load serves SQLite's merged pass on the file it wrote to at start-up (what a fresh load
    # there finds), then the data session gets a load of its own; merged pass + data on PostgreSQL
    assert loads(record) == {"sqlite": 2, "postgresql": 2}


# -- --since REF ------------------------------------------------------------------------------------------------

def git(project: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=project,
                          check=True, capture_output=True, text=True).stdout


def committed(root: Path, revisions: list[Rev], models: str) -> Path:
    project = make_project(root, revisions, models)
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "base")
    return project


def test_since_checks_only_the_revisions_added_since_the_ref(harness, tmp_path: Path) -> None:
    project = committed(tmp_path / "p", good_chain(), GOOD_MODELS)
    make_project(project, good_chain() + [COMMENTS], COMMENTS_MODELS)  # a003 added, not even committed
    run = harness(project, "--since", "main")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["since"] == {"ref": "main", "applied": ["a001", "a002"], "checked": ["a003"]}
    for dialect in ALL:
        steps = run.database(dialect)["steps"]
        assert {s["revision"] for s in steps if s["check"] in ("downgrade", "stairway", "data")} == {"a003"}
        assert run.check(dialect, "upgrade")["message"] == "1 revisions applied one by one, a002 to head"
    assert "since main: 1 revision(s) fully checked (a003), 2 only applied (up to a002)" in run.stdout


def test_since_finds_the_defect_in_a_new_revision(harness, tmp_path: Path) -> None:
    project = committed(tmp_path / "p", good_chain() + [COMMENTS], COMMENTS_MODELS)
    make_project(project, good_chain() + [COMMENTS, LEAKY], LEAKY_MODELS)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "leaky")
    run = harness(project, "--since", "HEAD~1", db=("sqlite", "postgresql"))
    assert run.exit_code == 1, run.stdout + run.stderr
    assert run.report["since"]["checked"] == ["a004"]
    assert {run.check(d, "stairway")["revision"] for d in ("sqlite", "postgresql")} == {"a004"}


def test_since_counts_a_changed_revision_and_what_is_above_it_as_new(harness, tmp_path: Path) -> None:
    project = committed(tmp_path / "p", good_chain() + [COMMENTS], COMMENTS_MODELS)
    posts = next((project / "migrations" / "versions").glob("a002_*.py"))
    posts.write_text(posts.read_text().replace('"title"', '"title"', 1) + "\n# reviewed\n")
    run = harness(project, "--since", "main", db=("sqlite",))
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["since"] == {"ref": "main", "applied": ["a001"], "checked": ["a002", "a003"]}


def test_since_with_nothing_new_starts_no_database(harness, tmp_path: Path) -> None:
    project = committed(tmp_path / "p", good_chain(), GOOD_MODELS)
    run = harness(project, "--since", "main")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["databases"] == [] and run.report["since"]["checked"] == []
    assert "nothing to check: no revision was added or changed since main" in run.stdout


#: the preflight's load (the one on a SQLite file) takes 2 s more, and notes when it is done
SLOW_PREFLIGHT = '''
    if os.environ["DATABASE_URL"].startswith("sqlite"):
        import time as _time
        _time.sleep(2)
        with open(os.environ["HARNESS_TEST_LOADS"], "a") as f:
            f.write("preflight-done\\n")
'''


def test_since_with_a_new_revision_starts_the_databases_while_the_app_loads(harness, tmp_path: Path) -> None:
    """A revision file added under the migrations directory: the server databases load the app while the
    preflight still runs, instead of after it."""
    record = tmp_path / "loads.txt"
    project = committed(tmp_path / "p", good_chain(), GOOD_MODELS)
    counting_project(project, good_chain() + [COMMENTS], COMMENTS_MODELS, start_up=SLOW_PREFLIGHT)
    run = harness(project, "--since", "main", db=("postgresql",), env={"HARNESS_TEST_LOADS": str(record)})
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["since"]["checked"] == ["a003"]
    order = record.read_text().split()
    assert order.index("postgresql") < order.index("preflight-done"), order


def test_since_with_only_other_files_changed_starts_nothing_before_the_preflight_says_so(harness,
                                                                                        tmp_path: Path) -> None:
    """A change outside the migrations directory (the app's code) loads nothing but the preflight; a change
    inside it that is no revision (env.py) may start the databases with the preflight, and they are stopped
    unreported, their scratch databases dropped (the fixture checks that)."""
    record = tmp_path / "loads.txt"
    project = committed(tmp_path / "p", good_chain(), GOOD_MODELS)
    counting_project(project, good_chain(), GOOD_MODELS, start_up=SLOW_PREFLIGHT)  # app.py changed
    run = harness(project, "--since", "main", env={"HARNESS_TEST_LOADS": str(record)})
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["databases"] == [] and run.report["since"]["checked"] == []
    assert record.read_text().split() == ["sqlite", "preflight-done"]
    env_py = project / "migrations" / "env.py"
    env_py.write_text(env_py.read_text() + "\n# reviewed\n")
    run = harness(project, "--since", "main", env={"HARNESS_TEST_LOADS": str(record)})
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["databases"] == [] and run.report["since"]["checked"] == []
    assert "nothing to check: no revision was added or changed since main" in run.stdout
    assert not any(d in run.stdout for d in ("postgresql", "mysql")), run.stdout
    # the same with a container of the harness's own: started with the preflight, then removed
    run = harness(project, "--since", "main", db=("postgresql",), use_servers=False,
                  env={"HARNESS_TEST_LOADS": str(record), "HARNESS_POSTGRESQL_URL": ""})
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["databases"] == [] and "postgresql" not in run.stdout, run.stdout
    assert not run_containers(run.report["run_id"])


def test_since_a_ref_that_does_not_exist_is_a_usage_error(harness, tmp_path: Path) -> None:
    project = committed(tmp_path / "p", good_chain(), GOOD_MODELS)
    run = harness(project, "--since", "origin/nope", db=("sqlite",))
    assert run.exit_code == 2, run.stdout + run.stderr
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "--since origin/nope: not a commit" in lines[0], lines
    outside = make_project(tmp_path / "plain", good_chain(), GOOD_MODELS)
    run = harness(outside, "--since", "main", db=("sqlite",))
    assert run.exit_code == 2 and "--since" in run.stderr and "git" in run.stderr, run.stderr
    run = harness(project, "--since", "main", "--from", "a001", db=("sqlite",))
    assert run.exit_code == 2 and "give one of them" in run.stderr, run.stderr
    assert json.loads(json.dumps(run.report))["databases"] == []


# -- the pytest plugin and the fixture ----------------------------------------------------------------------------

TWO_FIXTURE_TESTS = '''
import pytest
import sqlalchemy as sa


@pytest.mark.parametrize("round", [1, 2])
@pytest.mark.parametrize("migration_database", ["sqlite", "postgresql"], indirect=True)
def test_fresh_at_head(migration_database, round):
    engine = sa.create_engine(migration_database)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar() == 0  # nothing of the other test
        conn.execute(sa.text("INSERT INTO users (id, name) VALUES (1, 'x')"))
    engine.dispose()
'''


def _pytest(project: Path, server_urls: dict[str, str], record: Path, *args: str) -> subprocess.CompletedProcess:
    import sys

    from conftest import cli_env

    env = {**cli_env(), "HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"],
           "HARNESS_TEST_LOADS": str(record)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=project,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_plugin_starts_only_the_databases_k_selects(tmp_path: Path, server_urls) -> None:
    record = tmp_path / "loads.txt"
    project = counting_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    proc = _pytest(project, server_urls, record, "--migrations", "--migrations-app", "app:create_app", "-k",
                   "sqlite and (upgrade or stairway)")
    assert proc.returncode == 0 and "2 passed, 22 deselected" in proc.stdout, proc.stdout + proc.stderr
    assert loads(record) == {"sqlite": 1}  # the preflight's worker serves SQLite: no PostgreSQL, no MySQL


def test_the_fixture_loads_the_app_once_per_database(tmp_path: Path, server_urls) -> None:
    record = tmp_path / "loads.txt"
    project = counting_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "test_mine.py").write_text(TWO_FIXTURE_TESTS)
    proc = _pytest(project, server_urls, record, "--migrations-app", "app:create_app", "test_mine.py")
    assert proc.returncode == 0 and "4 passed" in proc.stdout, proc.stdout + proc.stderr
    assert loads(record) == {"sqlite": 1, "postgresql": 1}


#: reads the database through the app's own engine, not ``op.get_bind()``: rendered offline that connection is
#: refused (the SQL must not depend on a database), now that the render runs in the worker that observes next
READS_ITSELF = Rev("a003", "add users.nick after counting users", '''
from app import db
with db.engine.connect() as conn:
    conn.execute(sa.text("SELECT count(*) FROM users"))
op.add_column("users", sa.Column("nick", sa.String(40), nullable=True))
''', 'op.drop_column("users", "nick")')
NICK_MODELS = GOOD_MODELS.replace('    name = db.Column(', '    nick = db.Column(sa.String(40))\n    name = db.Column(')


def test_lint_loads_the_app_once_per_database_and_renders_without_a_database(tmp_path: Path, server_urls) -> None:
    from test_lint import lint

    record = tmp_path / "loads.txt"
    project = counting_project(tmp_path / "p", [*good_chain(), READS_ITSELF], NICK_MODELS)
    proc, report = lint(project, server_urls, "--from", "a002", env={"HARNESS_TEST_LOADS": str(record)})
    assert proc.returncode == 0 and report is not None, proc.stdout + proc.stderr
    # one worker per database, the offline SQL then the observation; SQLite's is the preflight's (on its own file)
    assert loads(record) == {"sqlite": 1, "postgresql": 1, "mysql": 1}
    assert [(d["dialect"], d["status"], len(d["observations"])) for d in report["databases"]] == [
        ("sqlite", "ok", 1), ("postgresql", "ok", 1), ("mysql", "ok", 1)]
    unrendered = {f["database"]: f["message"] for f in report["findings"] if f["rule"] == "offline-sql-failed"}
    # as on the unreachable URL the render used before: refused on the servers; SQLite's file is empty while it
    # renders (the observation gets it made fresh again), as the throwaway file was
    assert sorted(unrendered) == ["mysql", "postgresql", "sqlite"], report["findings"]
    assert all(m.startswith("a003 cannot be rendered offline") for m in unrendered.values()), unrendered
    assert "connection refused" in unrendered["postgresql"] and "connection refused" in unrendered["mysql"]
    assert "no such table: users" in unrendered["sqlite"]


# --- steps that share a run of env.py --------------------------------------------------------------------------------

#: env.py notes every run of itself in $HARNESS_TEST_ENV_RUNS (alembic runs it afresh for every command), once it
#: has migrated
ENV_RUNS = '''import os as _os
if _os.environ.get("HARNESS_TEST_ENV_RUNS"):
    with open(_os.environ["HARNESS_TEST_ENV_RUNS"], "a") as _f:
        _f.write("run\\n")
'''

#: PostgreSQL: a value added to an enum cannot be used in the transaction that added it ("unsafe use of new value"):
#: the chain passes one revision at a time, each committed, and fails where a004 and a005 share a transaction
MOOD = Rev("a003", "create moods", """
    op.execute("CREATE TYPE mood AS ENUM ('calm')")
    op.execute("CREATE TABLE moods (id INTEGER PRIMARY KEY, m mood)")
""", """
    op.execute("DROP TABLE moods")
    op.execute("DROP TYPE mood")
""")
GLAD = Rev("a004", "add glad to mood", """
    op.execute("ALTER TYPE mood ADD VALUE 'glad'")
""", """
    op.execute("ALTER TYPE mood RENAME TO mood_old")
    op.execute("CREATE TYPE mood AS ENUM ('calm')")
    op.execute("ALTER TABLE moods ALTER COLUMN m TYPE mood USING m::text::mood")
    op.execute("DROP TYPE mood_old")
""")
BE_GLAD = Rev("a005", "a glad row", """
    op.execute("INSERT INTO moods (id, m) VALUES (1, 'glad')")
""", """
    op.execute("DELETE FROM moods WHERE id = 1")
""")

#: outside any transaction (alembic's autocommit_block), in the middle of a shared run
CONCURRENT = Rev("a006", "index moods concurrently", """
    with op.get_context().autocommit_block():
        op.execute("CREATE INDEX CONCURRENTLY ix_moods_m ON moods (m)")
""", """
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY ix_moods_m")
""")
BUT_CALM = Rev("a007", "calm again", """
    op.execute("UPDATE moods SET m = 'calm' WHERE id = 1")
""", """
    op.execute("UPDATE moods SET m = 'glad' WHERE id = 1")
""")


def env_counting_project(root: Path, env_py: str | None = None, *, concurrent: bool = True) -> Path:
    """The mood chain (7 revisions; without ``concurrent``, 5: an env.py inside its own transaction cannot run
    alembic's autocommit_block, with or without the harness)."""
    revisions = [*good_chain(), MOOD, GLAD, BE_GLAD] + ([CONCURRENT, BUT_CALM] if concurrent else [])
    project = make_project(root, revisions, GOOD_MODELS)
    env = project / "migrations" / "env.py"
    env.write_text((env_py if env_py is not None else env.read_text()) + "\n" + ENV_RUNS)  # after a __future__ import
    return project


def test_the_steps_of_a_check_share_a_run_of_env_py_and_each_commits_on_its_own(harness, tmp_path: Path) -> None:
    record = tmp_path / "env-runs.txt"
    run = harness(env_counting_project(tmp_path / "p"), "--checks", "upgrade,downgrade,stairway",
                  db=("postgresql",), env={"HARNESS_TEST_ENV_RUNS": str(record)})
    # each step committed before the next: a005 may use the value a004 added (it could not in one transaction)
    assert run.statuses("upgrade") == {"postgresql": "passed"}, run.stdout + run.stderr
    assert run.statuses("downgrade") == {"postgresql": "passed"}
    assert run.statuses("stairway") == {"postgresql": "passed"}
    # 7 revisions: 21 steps for the stairway (its first ups are the upgrade), 7 for the downgrade; a run of env.py
    # for the first step of each, one for the rest
    assert len(record.read_text().split()) <= 4, record.read_text()
    timed = [s for s in run.database("postgresql")["steps"] if s["check"] == "stairway"]
    assert [(s["direction"], s["revision"]) for s in timed[:6]] == [
        ("up", "a001"), ("down", "a001"), ("up", "a001"), ("up", "a002"), ("down", "a002"), ("up", "a002")]


#: env.py that migrates inside a transaction of its own: the steps cannot commit one by one in a shared run
OWN_TRANSACTION_ENV = OWN_ENGINE_ENV.replace(
    "    connection = engine.connect()\n", "    connection = engine.connect()\n    outer = connection.begin()\n"
).replace("            context.run_migrations()\n    finally:", "            context.run_migrations()\n        outer.commit()\n    finally:")


def test_an_env_py_with_its_own_transaction_runs_every_step_alone(harness, tmp_path: Path) -> None:
    assert "outer.commit()" in OWN_TRANSACTION_ENV
    record = tmp_path / "env-runs.txt"
    run = harness(env_counting_project(tmp_path / "p", OWN_TRANSACTION_ENV, concurrent=False),
                  "--checks", "upgrade,downgrade,stairway",
                  db=("postgresql",), env={"HARNESS_TEST_ENV_RUNS": str(record)})
    assert run.statuses("stairway") == {"postgresql": "passed"}, run.stdout + run.stderr
    assert run.statuses("upgrade") == {"postgresql": "passed"}
    assert run.statuses("downgrade") == {"postgresql": "passed"}
    assert len(record.read_text().split()) == 15 + 5  # the stairway (its first ups are the upgrade), the downgrade


def test_a_step_that_fails_in_a_shared_run_is_named_with_its_check_and_role(harness, tmp_path: Path) -> None:
    broken = Rev("a005", "a glad row", BE_GLAD.upgrade, 'op.execute("DELETE FROM no_such_table")')
    project = make_project(tmp_path / "p", [*good_chain(), MOOD, GLAD, broken, CONCURRENT, BUT_CALM], GOOD_MODELS)
    run = harness(project, "--checks", "upgrade,downgrade,stairway", db=("postgresql",))
    stairway = run.check("postgresql", "stairway")
    assert stairway["status"] == "failed" and stairway["revision"] == "a005", stairway
    assert stairway["message"].startswith("downgrade: downgrade of a005"), stairway["message"]
    assert "no_such_table" in stairway["message"]
    downgrade = run.check("postgresql", "downgrade")
    assert downgrade["status"] == "failed" and downgrade["revision"] == "a005", downgrade
    assert run.statuses("upgrade") == {"postgresql": "passed"}
    timed = [(s["check"], s["direction"], s["revision"], s["passed"]) for s in run.database("postgresql")["steps"]]
    assert ("stairway", "down", "a005", False) in timed and ("downgrade", "down", "a005", False) in timed, timed
    assert ("stairway", "up", "a006", True) not in timed  # the walk stopped at the failure


def test_an_env_py_that_sends_sql_of_its_own_before_migrating_runs_every_step_alone(harness, tmp_path: Path) -> None:
    """A ``SET LOCAL`` before the migrations holds for env.py's transaction only: in a shared run it would hold for
    the first step alone, so the steps keep a run of env.py each (each run sends it again)."""
    record = tmp_path / "env-runs.txt"
    project = env_counting_project(tmp_path / "p", concurrent=False)
    env = project / "migrations" / "env.py"
    text = env.read_text()
    assert "            context.run_migrations()\n" in text
    env.write_text(text.replace("            context.run_migrations()\n",
                                "            context.execute(\"SET LOCAL statement_timeout = '30s'\")\n"
                                "            context.run_migrations()\n", 1))
    run = harness(project, "--checks", "upgrade,downgrade,stairway", db=("postgresql",),
                  env={"HARNESS_TEST_ENV_RUNS": str(record)})
    assert run.statuses("stairway") == {"postgresql": "passed"}, run.stdout + run.stderr
    assert run.statuses("downgrade") == {"postgresql": "passed"}
    assert len(record.read_text().split()) == 15 + 5




def test_a_step_built_without_alembic_is_the_step_alembic_builds(tmp_path: Path) -> None:
    """A revision of one parent, applied from its parent or reverted from itself, is one migration step the harness
    builds itself (alembic walks the revision map for it, at every step of every check); every other shape is
    alembic's. For every revision of a chain with two branches, a merge and a ``depends_on``, from every set of
    at most two heads, the steps are alembic's own, and where alembic refuses the harness refuses alike."""
    import itertools

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from harness.chain.history import ordered_revisions
    from harness.chain.steps import UP, Step, downgrade_steps, migration_steps, upgrade_steps
    from harness.versions import downgrade_revs
    from test_chain import MERGE, TWO_HEADS, TWO_HEADS_MODELS

    project = make_project(tmp_path / "p", TWO_HEADS + [MERGE, Rev("a006", "after the merge", "pass", "pass"),
                                                        Rev("a007", "needs notes", "pass", "pass")], TWO_HEADS_MODELS)
    [needs] = (project / "migrations" / "versions").glob("a007_*.py")
    needs.write_text(needs.read_text().replace("depends_on = None", "depends_on = 'a004'"))
    config = Config()
    config.set_main_option("script_location", str(project / "migrations"))
    script = ScriptDirectory.from_config(config)
    revisions = ordered_revisions(script)
    ids = [r.revision for r in revisions]
    assert script.get_revision("a007").dependencies == "a004"

    def described(steps: list) -> list:
        return [(s.revision.revision, s.is_upgrade) for s in steps]

    def alembics(step: Step, heads: tuple) -> list:
        if step.direction == UP:
            return described(script._upgrade_revs(step.target, heads))
        return described(downgrade_revs(script, step.target, step.revision.revision, heads))

    compared = 0
    for step in upgrade_steps(revisions) + downgrade_steps(revisions):
        for heads in [()] + [c for n in (1, 2) for c in itertools.combinations(ids, n)]:
            try:
                expected = alembics(step, heads)
            except Exception as exc:  # noqa: BLE001 - alembic refuses: so does the harness, with the same error
                try:
                    migration_steps(script, step, heads)
                except Exception as mine:  # noqa: BLE001
                    assert type(mine) is type(exc), (step, heads, mine, exc)
                    continue
                raise AssertionError(f"{step} from {heads}: alembic refuses ({exc}), the harness did not")
            assert described(migration_steps(script, step, heads)) == expected, (step, heads)
            compared += 1
    assert compared > 100, compared
