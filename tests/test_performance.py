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


ALTERATIONS = [
    "CREATE TABLE t1 (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL)",
    "CREATE TABLE t2 (id INTEGER PRIMARY KEY, t1_id INTEGER REFERENCES t1 (id), score INTEGER)",
    "CREATE INDEX ix_t2_score ON t2 (score)",
    "ALTER TABLE t2 ADD COLUMN note VARCHAR(30)",
    "DROP INDEX ix_t2_score{on_t2}",
    "CREATE UNIQUE INDEX ix_t2_note ON t2 (note)",
    "ALTER TABLE t1 ADD COLUMN flag INTEGER DEFAULT 1",
]


def test_reused_reflections_are_the_same_as_fresh_ones(server_urls, tmp_path: Path) -> None:
    """The snapshot cache (a table is reflected again only when its catalogue fingerprint changed) must never
    change what a snapshot holds: after each DDL statement, on every database, cached == fresh."""
    import sqlalchemy as sa

    from harness.backends import get_backend
    from harness.schema.reflect import snapshot

    urls = {"sqlite": f"sqlite:///{tmp_path / 'fp.db'}"}
    import secrets

    scratch = f"fingerprint_test_{secrets.token_hex(4)}"  # this test's own: other runs may share the servers
    for dialect in ("postgresql", "mysql"):
        admin = sa.create_engine(server_urls[dialect], isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {scratch}"))
            conn.execute(sa.text(f"CREATE DATABASE {scratch}"))
        admin.dispose()
        urls[dialect] = sa.engine.make_url(server_urls[dialect]).set(database=scratch).render_as_string(False)
    try:
        for dialect, url in urls.items():
            backend, cache = get_backend(dialect), {}
            engine = sa.create_engine(url)
            for statement in ALTERATIONS:
                with engine.begin() as conn:
                    conn.execute(sa.text(statement.format(on_t2=" ON t2" if dialect == "mysql" else "")))
                with engine.connect() as conn:
                    cached, fresh = snapshot(conn, backend, cache), snapshot(conn, backend)
                assert cached == fresh, (dialect, statement)
            assert len(cache) == 2
            engine.dispose()
    finally:
        for dialect in ("postgresql", "mysql"):
            admin = sa.create_engine(server_urls[dialect], isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {scratch}"))
            admin.dispose()


# Every kind of object a snapshot lists, per dialect, made in a database of the test's own.
CATALOGUE_OBJECTS = {
    "sqlite": ["CREATE TABLE counted (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER)",  # makes sqlite_sequence
               "CREATE VIEW v_counted AS SELECT id FROM counted",
               "CREATE TRIGGER tr_counted AFTER INSERT ON counted BEGIN SELECT 1; END"],
    "postgresql": ["CREATE TYPE mood AS ENUM ('calm', 'glad')",
                   "CREATE TABLE counted (id SERIAL PRIMARY KEY, m mood, n INTEGER CHECK (n > 0))",
                   "CREATE VIEW v_counted AS SELECT id FROM counted",
                   "CREATE MATERIALIZED VIEW mv_counted AS SELECT id FROM counted",
                   "CREATE SEQUENCE free_counter",
                   "CREATE FUNCTION add_one(i integer) RETURNS integer AS 'SELECT i + 1' LANGUAGE SQL",
                   # a table in another schema on the search path: listed by SQLAlchemy 2's Inspector, not 1.x's
                   # (the fingerprints list the same tables as the Inspector, whichever it is)
                   "CREATE SCHEMA elsewhere", "CREATE TABLE elsewhere.far (id INTEGER PRIMARY KEY)",
                   "ALTER DATABASE {database} SET search_path = \"$user\", public, elsewhere"],
    "mysql": ["CREATE TABLE counted (id INTEGER AUTO_INCREMENT PRIMARY KEY, n INTEGER, CHECK (n > 0))",
              "CREATE VIEW v_counted AS SELECT id FROM counted",
              "CREATE TRIGGER tr_counted BEFORE INSERT ON counted FOR EACH ROW SET NEW.n = NEW.n + 1",
              "CREATE PROCEDURE noop() SELECT 1"],
}
CATALOGUE_EXPECTED = {
    "sqlite": {"view": ["v_counted"], "table": ["sqlite_sequence"], "trigger": ["tr_counted"]},
    "postgresql": {"view": ["v_counted"], "materialized_view": ["mv_counted"], "enum_type": ["mood"],
                   "sequence": ["free_counter"], "function": ["add_one"]},
    "mysql": {"view": ["v_counted"], "routine": ["noop"], "trigger": ["tr_counted"], "sequence": []},
}


def test_the_catalogue_read_at_once_is_what_the_separate_reads_give(server_urls, tmp_path: Path) -> None:
    """A snapshot reads the fingerprints, the other objects and (MySQL, PostgreSQL) the table names in one go
    (``Backend.catalogue``): on each database it must give exactly the fingerprints, every kind of object, and the
    Inspector's table and view names, also beside a temporary table and (PostgreSQL) another schema's table."""
    import secrets

    import sqlalchemy as sa

    from harness.backends import get_backend

    scratch = f"catalogue_test_{secrets.token_hex(4)}"  # this test's own: other runs may share the servers
    urls = {"sqlite": f"sqlite:///{tmp_path / 'catalogue.db'}"}
    for dialect in ("postgresql", "mysql"):
        admin = sa.create_engine(server_urls[dialect], isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {scratch}"))
        admin.dispose()
        urls[dialect] = sa.engine.make_url(server_urls[dialect]).set(database=scratch).render_as_string(False)
    try:
        for dialect, url in urls.items():
            backend = get_backend(dialect)
            engine = sa.create_engine(url)
            expected = dict(CATALOGUE_EXPECTED[dialect])
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE plain (id INTEGER PRIMARY KEY, name VARCHAR(20) UNIQUE)"))
                for statement in CATALOGUE_OBJECTS[dialect]:
                    conn.execute(sa.text(statement.format(database=scratch)))
                if getattr(conn.dialect, "is_mariadb", False) or getattr(conn.dialect, "_is_mariadb", False):
                    conn.execute(sa.text("CREATE SEQUENCE seq_counter"))  # MariaDB's: a table of its own type
                    expected["sequence"] = ["seq_counter"]
            engine.dispose()  # the search_path set on the database applies to new connections
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                conn.execute(sa.text("CREATE TEMPORARY TABLE scratchpad (id INTEGER PRIMARY KEY)"))
                catalogue = backend.catalogue(conn)
                inspector = sa.inspect(conn)
                assert catalogue.fingerprints == backend.table_fingerprints(conn), dialect
                assert set(catalogue.fingerprints) >= {"plain", "counted"}, dialect
                assert "scratchpad" not in catalogue.fingerprints
                objects = {kind: sorted(names) for kind, names in catalogue.objects.items()}
                assert objects == expected, dialect
                assert objects["view"] == sorted(inspector.get_view_names()), dialect
                if dialect == "mysql":  # the table names come with the catalogue: the Inspector's exactly
                    assert catalogue.tables is not None
                    assert sorted(catalogue.tables) == sorted(inspector.get_table_names()) == ["counted", "plain"]
                    assert sorted(catalogue.fingerprints) == catalogue.tables
                elif dialect == "postgresql":  # the Inspector's exactly, whichever SQLAlchemy lists them
                    listed = sorted(inspector.get_table_names())  # elsewhere.far with SQLAlchemy 2, not before
                    assert listed == (["counted", "far", "plain"] if sa.__version__ >= "2" else ["counted", "plain"])
                    assert catalogue.tables == sorted(catalogue.fingerprints) == listed
                else:  # SQLite's own tables are listed before SQLAlchemy 2.0 and not since: the Inspector is asked
                    assert catalogue.tables is None, dialect
            engine.dispose()
    finally:
        for dialect in ("postgresql", "mysql"):
            admin = sa.create_engine(server_urls[dialect], isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                force = " WITH (FORCE)" if dialect == "postgresql" else ""
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {scratch}{force}"))
            admin.dispose()


def test_a_default_schema_whose_name_needs_quoting(server_urls) -> None:
    """PostgreSQL's ``current_schema()`` is a name, not an identifier: cast with ``::regnamespace`` a schema named
    ``MySchema`` was looked up as ``myschema`` and the statement failed ("schema does not exist"), so the table
    sizes ``rehearse`` and ``lint`` read of production failed on such a database. Each catalogue read that keeps to
    the default schema must find its tables and objects there."""
    import secrets

    import sqlalchemy as sa

    from harness.backends import get_backend

    scratch = f"quoted_schema_test_{secrets.token_hex(4)}"  # this test's own: other runs may share the servers
    admin = sa.create_engine(server_urls["postgresql"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {scratch}"))
    url = sa.engine.make_url(server_urls["postgresql"]).set(database=scratch)
    engine = sa.create_engine(url, connect_args={"options": '-c search_path="MySchema"'})
    backend = get_backend("postgresql")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text('CREATE SCHEMA "MySchema"'))
            conn.execute(sa.text("CREATE TABLE orders (id SERIAL PRIMARY KEY, note TEXT)"))
            conn.execute(sa.text("INSERT INTO orders (note) VALUES ('a'), ('b')"))
            conn.execute(sa.text("CREATE VIEW recent AS SELECT id FROM orders"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_schema()")).scalar() == "MySchema"
            sizes = backend.table_sizes(conn)
            assert list(sizes) == ["orders"] and sizes["orders"].rows == 2
            catalogue = backend.catalogue(conn)
            assert catalogue.tables == sorted(catalogue.fingerprints) == ["orders"]
            assert catalogue.objects["view"] == ["recent"]
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"))
        admin.dispose()


def test_mysql_reads_every_table_definition_in_one_round_trip(server_urls) -> None:
    """On MySQL/MariaDB a snapshot's fingerprints are the ``SHOW CREATE TABLE`` of every table: one round trip
    each took 5-6 ms on 26 tables per snapshot, twice per revision. Read in one round trip (a connection of the
    harness's own that takes several statements), they must be exactly the texts read one by one, names that
    need quoting included; the app's connection sends none of them; a connection the server ended is made again;
    and where the URL sets ``client_flag`` itself, or the URL alone does not get in (the engine's creator does),
    they are read one by one on the app's connection, as before."""
    import re
    import secrets

    import sqlalchemy as sa

    from harness.backends import get_backend

    scratch = f"one_trip_test_{secrets.token_hex(4)}"  # this test's own: other runs may share the servers
    admin = sa.create_engine(server_urls["mysql"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {scratch}"))
    url = sa.engine.make_url(server_urls["mysql"]).set(database=scratch)
    backend = get_backend("mysql")
    names = ["plain", "order", "with`tick", "with space"]
    try:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for number, name in enumerate(names):
                quoted = "`" + name.replace("`", "``") + "`"
                conn.execute(sa.text(f"CREATE TABLE {quoted} (id INTEGER AUTO_INCREMENT PRIMARY KEY, "
                                     f"n{number} VARCHAR(20) NOT NULL DEFAULT 'x', UNIQUE (n{number}))"))
                conn.execute(sa.text(f"INSERT INTO {quoted} (n{number}) VALUES ('a'), ('b')"))
        sent: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
        with engine.connect() as conn:
            catalogue = backend.catalogue(conn)
            fingerprints = backend.table_fingerprints(conn)
        assert not [s for s in sent if s.upper().startswith("SHOW CREATE")], sent
        with engine.connect() as conn:
            one_by_one = {name: re.sub(r" AUTO_INCREMENT=\d+", "", conn.execute(sa.text(
                "SHOW CREATE TABLE `" + name.replace("`", "``") + "`")).first()[1]) for name in names}
        assert catalogue.fingerprints == fingerprints == one_by_one
        assert sorted(catalogue.tables or []) == sorted(names)
        # the server ends every connection to the database (as a restarted server would): the next read makes its
        # connection again instead of failing on the one it kept
        with admin.connect() as conn:
            ids = [row[0] for row in conn.execute(sa.text(
                "SELECT id FROM information_schema.processlist WHERE db = :db"), {"db": scratch})]
            assert ids
            for number in ids:
                conn.execute(sa.text(f"KILL CONNECTION {int(number)}"))
        engine.dispose()
        with engine.connect() as conn:
            assert backend.table_fingerprints(conn) == one_by_one
        engine.dispose()

        # an engine whose URL alone does not get in (its creator does): read on its own connection, one by one
        import pymysql

        target = sa.engine.make_url(server_urls["mysql"])
        created = sa.create_engine(url.set(password="not-the-password", username="nobody"),
                                   creator=lambda: pymysql.connect(host=target.host, port=target.port or 3306,
                                                                   user=target.username, database=scratch,
                                                                   password=target.password or ""))
        with created.connect() as conn:
            assert backend.table_fingerprints(conn) == one_by_one
            assert backend.table_fingerprints(conn) == one_by_one  # and again, without trying the URL again
        created.dispose()

        flagged = sa.create_engine(url.update_query_dict({"client_flag": "2"}))  # the URL's own flags: kept
        sent.clear()
        sa.event.listen(flagged, "before_cursor_execute", lambda *args: sent.append(args[2]))
        with flagged.connect() as conn:
            assert backend.table_fingerprints(conn) == one_by_one
        assert len([s for s in sent if s.upper().startswith("SHOW CREATE")]) == len(names)
        flagged.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {scratch}"))
        admin.dispose()
