"""``harness.datagen`` against real SQLite, PostgreSQL and MariaDB/MySQL databases (no mocks).

Each test gets a scratch database (``mharness_test_<hex>``) created through an AUTOCOMMIT admin connection and
dropped in teardown. ``HARNESS_TEST_POSTGRESQL_URL`` / ``HARNESS_TEST_MYSQL_URL`` name the servers; the database
part of those URLs is only used for the admin connection.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from harness.datagen import FillResult, count_rows, fill_database

SERVER_URLS = {
    "postgresql": os.environ.get("HARNESS_TEST_POSTGRESQL_URL",
                                 "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"),
    "mysql": os.environ.get("HARNESS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/mysql"),
}
# The only per-dialect differences the tests need: how to create and drop a scratch database.
CREATE_SQL = {"postgresql": "CREATE DATABASE {name}", "mysql": "CREATE DATABASE {name} CHARACTER SET utf8mb4"}
DROP_SQL = {"postgresql": "DROP DATABASE IF EXISTS {name} WITH (FORCE)", "mysql": "DROP DATABASE IF EXISTS {name}"}
DIALECTS = ("sqlite", "postgresql", "mysql")


@pytest.fixture(params=DIALECTS)
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    """A fresh, empty database of each dialect; always removed afterwards."""
    dialect = request.param
    if dialect == "sqlite":
        eng = sa.create_engine(f"sqlite:///{tmp_path / 'datagen.db'}")
        yield eng
        eng.dispose()
        return
    name = f"mharness_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(SERVER_URLS[dialect], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(CREATE_SQL[dialect].format(name=name))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"{dialect} server not reachable: {str(exc.orig).splitlines()[0]}")
    eng = sa.create_engine(make_url(SERVER_URLS[dialect]).set(database=name))
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(DROP_SQL[dialect].format(name=name))
        admin.dispose()


def tricky_schema() -> sa.MetaData:
    """Most of what makes generating rows hard, in five tables plus a foreign-key cycle."""
    md = sa.MetaData()
    sa.Table(
        "accounts", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("code", sa.String(5), unique=True),
        sa.Column("active", sa.Boolean),
        sa.Column("mood", sa.Enum("happy", "sad", name="dg_mood")),
        sa.Column("kind", sa.Enum("basic", "premium", native_enum=False)),
        sa.Column("status", sa.Enum("new", "done", native_enum=False, create_constraint=True, name="ck_status")),
        sa.Column("meta", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("balance", sa.Numeric(10, 2)),
        sa.Column("bio", sa.Text),
        sa.Column("parent_id", sa.ForeignKey("accounts.id")),
        sa.Column("token", sa.Uuid),
        sa.Column("avatar", sa.LargeBinary),
        sa.Column("rank", sa.SmallInteger),
    )
    sa.Table("tags", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("label", sa.String(30), nullable=False, unique=True))
    sa.Table("account_tags", md,
             sa.Column("account_id", sa.ForeignKey("accounts.id"), primary_key=True),
             sa.Column("tag_id", sa.ForeignKey("tags.id"), primary_key=True))
    sa.Table("versions", md,
             sa.Column("major", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("minor", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("label", sa.String(10), nullable=False),
             sa.Column("released", sa.Date))
    sa.Table("payments", md,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False),
             sa.Column("amount", sa.Numeric(10, 2), nullable=False),
             sa.Column("note", sa.String(20), nullable=False),
             sa.Column("paid_at", sa.Time),
             sa.CheckConstraint("amount > 0", name="ck_payments_amount_positive"))
    # A cycle: teams.captain_id -> members (nullable, added after both tables), members.team_id -> teams.
    sa.Table("teams", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("captain_id", sa.Integer,
                       sa.ForeignKey("members.id", use_alter=True, name="fk_teams_captain")))
    sa.Table("members", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("team_id", sa.ForeignKey("teams.id"), nullable=False))
    sa.Table("alembic_version", md, sa.Column("version_num", sa.String(32), primary_key=True))
    return md


def orphan_count(conn: sa.Connection, table: sa.Table) -> int:
    """Rows whose non-NULL foreign key points at no parent row (SQLite does not enforce FKs by default)."""
    total = 0
    for fkc in table.foreign_key_constraints:
        parent = fkc.referred_table.alias("parent")
        local = [e.parent for e in fkc.elements]
        match = sa.and_(*(parent.c[e.column.name] == e.parent for e in fkc.elements))
        stmt = (sa.select(sa.func.count()).select_from(table)
                .where(*(c.isnot(None) for c in local), ~sa.exists().where(match)))
        total += conn.execute(stmt).scalar_one()
    return total


def unique_sets(table: sa.Table) -> list[list[sa.Column]]:
    sets = [list(c.columns) for c in table.constraints if isinstance(c, (sa.UniqueConstraint,))]
    sets += [list(ix.columns) for ix in table.indexes if ix.unique]
    return sets + [[c] for c in table.columns if c.unique]


def duplicate_count(conn: sa.Connection, table: sa.Table) -> int:
    total = 0
    for cols in unique_sets(table):
        groups = (sa.select(*cols).where(*(c.isnot(None) for c in cols)).group_by(*cols)
                  .having(sa.func.count() > 1))
        total += len(conn.execute(groups).all())
    return total


def test_fill_twice_respects_the_schema(engine: Engine) -> None:
    md = tricky_schema()
    md.create_all(engine)
    filled = [t for t in md.tables if t != "alembic_version"]
    with engine.connect() as conn:
        for step in (1, 2):
            result = fill_database(conn, 3, seed=0)
            assert isinstance(result, FillResult)
            assert result.skipped == {}
            assert result.inserted == {t: 3 for t in filled}
            counts = count_rows(conn)
            assert counts == {t: 3 * step for t in filled}
            assert not conn.in_transaction()
        with conn.begin():
            for table in md.sorted_tables:
                assert orphan_count(conn, table) == 0, table.name
                assert duplicate_count(conn, table) == 0, table.name
            accounts, teams = md.tables["accounts"], md.tables["teams"]
            # Nullable columns hold values in most rows and NULL in some; the self-reference and the cycle's
            # nullable side got real parents on the second call.
            bios = [b for (b,) in conn.execute(sa.select(accounts.c.bio))]
            assert 0 < bios.count(None) < len(bios)
            assert conn.execute(sa.select(sa.func.count()).where(accounts.c.parent_id.isnot(None))).scalar_one()
            assert conn.execute(sa.select(sa.func.count()).where(teams.c.captain_id.isnot(None))).scalar_one()
            statuses = set(conn.execute(sa.select(accounts.c.status)).scalars()) - {None}
            assert statuses <= {"new", "done"} and statuses
            # The server default applied on the rows that left created_at out.
            assert conn.execute(sa.select(sa.func.count()).where(accounts.c.created_at.isnot(None))).scalar_one()


def test_unsatisfiable_check_is_reported_not_raised(engine: Engine) -> None:
    md = sa.MetaData()
    sa.Table("huge", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("n", sa.Integer, nullable=False), sa.CheckConstraint("n > 1000000", name="ck_huge_n"))
    sa.Table("fine", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("s", sa.String(3)))
    md.create_all(engine)
    with engine.connect() as conn:
        result = fill_database(conn, 4, seed=3)
        assert result.inserted == {"fine": 4}
        assert set(result.skipped) == {"huge"} and result.skipped["huge"].strip()
        assert "\n" not in result.skipped["huge"]
        assert count_rows(conn) == {"fine": 4, "huge": 0}


def test_not_null_foreign_key_to_empty_table_is_skipped(engine: Engine) -> None:
    md = sa.MetaData()
    sa.Table("parent", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("n", sa.Integer),
             sa.CheckConstraint("n < 0", name="ck_parent_n"))
    sa.Table("child", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("parent_id", sa.ForeignKey("parent.id"), nullable=False))
    md.create_all(engine)
    with engine.connect() as conn:
        result = fill_database(conn)
        assert result.inserted == {}
        assert set(result.skipped) == {"parent", "child"}
        assert "parent" in result.skipped["child"]


def test_keys_the_database_does_not_generate(engine: Engine) -> None:
    """BIGINT keys (not a rowid alias on SQLite), natural keys, a NOT NULL self-reference on an empty table (the
    first row points at itself) and a composite foreign key (a whole parent row is copied)."""
    md = sa.MetaData()
    sa.Table("nodes", md, sa.Column("code", sa.String(8), primary_key=True),
             sa.Column("parent", sa.ForeignKey("nodes.code"), nullable=False))
    sa.Table("parents", md, sa.Column("a", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("b", sa.String(4), primary_key=True))
    sa.Table("children", md, sa.Column("id", sa.BigInteger, primary_key=True),
             sa.Column("a", sa.Integer, nullable=False), sa.Column("b", sa.String(4), nullable=False),
             sa.Column("lo", sa.Integer, nullable=False), sa.Column("hi", sa.Integer, nullable=False),
             sa.ForeignKeyConstraint(["a", "b"], ["parents.a", "parents.b"]), sa.CheckConstraint("lo <= hi"))
    md.create_all(engine)
    with engine.connect() as conn:
        for _ in range(3):
            assert fill_database(conn, 2, seed=1) == FillResult({"nodes": 2, "parents": 2, "children": 2}, {})
        with conn.begin():
            for table in md.sorted_tables:
                assert orphan_count(conn, table) == 0, table.name
                assert duplicate_count(conn, table) == 0, table.name


# Migration-like DDL that succeeds on an empty table and fails once rows exist; "{t}" is the table.
DATA_ONLY_FAILURES = {
    "postgresql": [["ALTER TABLE {t} ADD COLUMN x INTEGER NOT NULL"],
                   ["ALTER TABLE {t} ALTER COLUMN name TYPE VARCHAR(2)"]],
    "mysql": [["ALTER TABLE {t} MODIFY name VARCHAR(2) NOT NULL"]],
    # What a batch (copy-and-move) migration does when it adds a NOT NULL column without a default.
    "sqlite": [["CREATE TABLE {t}_new (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, x INTEGER NOT NULL)",
                "INSERT INTO {t}_new (id, name, x) SELECT id, name, NULL FROM {t}"]],
}


def test_data_only_failures_really_fail_after_fill(engine: Engine) -> None:
    md = sa.MetaData()
    for name in ("empty_t", "full_t"):
        sa.Table(name, md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))
    md.create_all(engine)
    with engine.connect() as conn:
        assert fill_database(conn, exclude=("alembic_version", "empty_t")).inserted == {"full_t": 3}
        for statements in DATA_ONLY_FAILURES[engine.dialect.name]:
            with conn.begin() as tx:
                for sql in statements:
                    conn.exec_driver_sql(sql.format(t="empty_t"))
                tx.rollback()
            with pytest.raises(sa.exc.DBAPIError):
                with conn.begin():
                    for sql in statements:
                        conn.exec_driver_sql(sql.format(t="full_t"))


def test_needs_a_connection_outside_a_transaction(engine: Engine) -> None:
    with engine.connect() as conn, conn.begin():
        with pytest.raises(ValueError):
            fill_database(conn)
        assert count_rows(conn) == {}


def _contents(path) -> dict[str, list[tuple]]:
    eng = sa.create_engine(f"sqlite:///{path}")
    try:
        md = sa.MetaData()
        md.reflect(eng)
        with eng.connect() as conn:
            return {t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.columns))]
                    for t in md.tables.values()}
    finally:
        eng.dispose()


def test_same_seed_same_rows(tmp_path) -> None:
    md = tricky_schema()
    md.tables["accounts"].c.created_at.server_default = None  # now() would differ between the two databases
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        eng = sa.create_engine(f"sqlite:///{tmp_path / name}.db")
        md.create_all(eng)
        with eng.connect() as conn:
            fill_database(conn, seed=seed)
            fill_database(conn, seed=seed)
        eng.dispose()
    a, b, c = (_contents(tmp_path / f"{n}.db") for n in "abc")
    assert a == b
    assert a != c


def _fingerprints(conn: sa.Connection) -> dict[str, str]:
    from harness.backends import get_backend

    with conn.begin():
        return get_backend(conn.dialect.name).table_fingerprints(conn) or {}


def test_a_reflection_is_reused_until_its_table_or_the_table_it_refers_to_changes(engine: Engine) -> None:
    """The data check fills before every step: an unchanged table keeps its reflection, a changed one (and a
    table whose foreign key points at it) is reflected again, so the new columns get values."""
    from harness.datagen import Reflected

    md = sa.MetaData()
    sa.Table("owners", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)))
    sa.Table("pets", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("owner_id", sa.ForeignKey("owners.id"), nullable=False))
    sa.Table("plain", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.String(20)))
    md.create_all(engine)
    reflected = Reflected()
    with engine.connect() as conn:
        fill_database(conn, 2, reflected=reflected, marks=_fingerprints(conn))
        first = dict(reflected.metadata.tables)
        assert set(first) == {"owners", "pets", "plain"}
        with conn.begin():
            conn.exec_driver_sql("ALTER TABLE owners ADD COLUMN age INTEGER")
        result = fill_database(conn, 2, seed=1, reflected=reflected, marks=_fingerprints(conn))
        assert result.inserted == {"owners": 2, "pets": 2, "plain": 2}, result
        tables = reflected.metadata.tables
        assert tables["plain"] is first["plain"]  # unchanged: not reflected again
        assert tables["owners"] is not first["owners"] and "age" in tables["owners"].c
        assert tables["pets"] is not first["pets"]  # it refers to owners
        with conn.begin():
            ages = conn.exec_driver_sql("SELECT count(*) FROM owners WHERE age IS NOT NULL").scalar()
        assert ages >= 1  # the new column got values: its table was reflected again
        with conn.begin():
            conn.exec_driver_sql("DROP TABLE plain")
        assert "plain" not in fill_database(conn, 2, seed=2, reflected=reflected, marks=_fingerprints(conn)).inserted
        assert "plain" not in reflected.metadata.tables


def test_an_enum_whose_labels_changed_is_reflected_again(tmp_path) -> None:
    """PostgreSQL: an enum type recreated with fewer labels (a downgrade's way to remove one) keeps its name; the
    fingerprint holds the labels, so the fill never offers the removed one."""
    from harness.datagen import Reflected

    name = f"mharness_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(SERVER_URLS["postgresql"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine = sa.create_engine(make_url(SERVER_URLS["postgresql"]).set(database=name))
    try:
        with engine.connect() as conn:
            with conn.begin():
                conn.exec_driver_sql("CREATE TYPE mood AS ENUM ('calm', 'glad', 'sad')")
                conn.exec_driver_sql("CREATE TABLE moods (id INTEGER PRIMARY KEY, m mood NOT NULL)")
            reflected = Reflected()
            fill_database(conn, 3, reflected=reflected, marks=_fingerprints(conn))
            with conn.begin():
                conn.exec_driver_sql("DELETE FROM moods")
                conn.exec_driver_sql("ALTER TYPE mood RENAME TO mood_old")
                conn.exec_driver_sql("CREATE TYPE mood AS ENUM ('calm')")
                conn.exec_driver_sql("ALTER TABLE moods ALTER COLUMN m TYPE mood USING m::text::mood")
                conn.exec_driver_sql("DROP TYPE mood_old")
            result = fill_database(conn, 3, seed=1, reflected=reflected, marks=_fingerprints(conn))
            assert result == FillResult({"moods": 3}, {}), result
            assert list(reflected.metadata.tables["moods"].c.m.type.enums) == ["calm"]
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def _rows(conn: sa.Connection, metadata: sa.MetaData) -> dict[str, list[str]]:
    """Every row of every table of ``metadata``, as text, in a stable order (JSON cannot be ordered by in SQL)."""
    return {t.name: sorted(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r))
                           for r in conn.exec_driver_sql(f"SELECT * FROM {t.name}"))
            for t in metadata.sorted_tables}


def test_a_table_from_the_library_fills_as_its_fresh_reflection_does(engine: Engine, monkeypatch) -> None:
    """A worker keeps every table state it reflected, by fingerprint (``Reflected.library``): the data check's
    NULL probes replay the chain on a fresh database and reflect nothing the check reflected already, and a table
    whose foreign key points at a changed one is copied, not reflected again. A copy must fill exactly as a fresh
    reflection does: the same schema made twice, filled with the same seed, once reflected and once all from the
    library, holds the same rows."""
    from harness.datagen import Reflected

    md = tricky_schema()
    md.tables["accounts"].c.created_at.server_default = None  # now() would differ between the two fills
    library: dict = {}
    filled = []
    reflections = []
    reflect = sa.MetaData.reflect
    monkeypatch.setattr(sa.MetaData, "reflect", lambda self, *a, **kw: (reflections.append(kw.get("only")),
                                                                       reflect(self, *a, **kw))[1])
    for attempt in ("reflected", "copied"):
        md.drop_all(engine)
        md.create_all(engine)
        reflections.clear()
        reflected = Reflected(library=library)
        with engine.connect() as conn:
            for seed in (1, 2):
                result = fill_database(conn, 3, seed=seed, reflected=reflected, marks=_fingerprints(conn))
                assert result.inserted, result
            with conn.begin():
                filled.append(_rows(conn, md))
        if attempt == "reflected":
            assert reflections and len(library) == 7, (reflections, sorted(library))
        else:  # every table came from the library, none was reflected
            assert reflections == [], reflections
            assert not any(t is library[k] for k in library for t in reflected.metadata.tables.values())
    assert filled[0] == filled[1]
    # a table that changed is reflected; one whose foreign key points at it is a copy that finds the new one
    with engine.connect() as conn:
        with conn.begin():
            conn.exec_driver_sql("ALTER TABLE tags ADD COLUMN shade INTEGER")
        reflections.clear()
        result = fill_database(conn, 3, seed=3, reflected=reflected, marks=_fingerprints(conn))
    assert reflections == [["tags"]], reflections
    tables = reflected.metadata.tables
    assert "shade" in tables["tags"].c and result.inserted.get("tags") == 3, result
    link = tables["account_tags"]
    assert {fk.column.table for fk in link.foreign_keys} == {tables["accounts"], tables["tags"]}
    md.drop_all(engine)


def test_sqlite_keeps_no_library_a_foreign_key_left_to_the_primary_key_follows_it(tmp_path) -> None:
    """SQLite's fingerprint is the table's text as written: ``REFERENCES owners`` leaves the referred columns to
    owners' primary key, so the text of pets stays the same when that key changes. The data check keeps no library
    there (``Reflected(library=None)``), and pets is reflected again, its foreign key on the new key; a copy kept
    by fingerprint would still point at the old one."""
    from harness.backends import get_backend
    from harness.datagen import Reflected

    assert not get_backend("sqlite").fingerprints_are_canonical  # what the data check decides the library on
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE owners (id INTEGER PRIMARY KEY, name VARCHAR(20))")
        conn.exec_driver_sql("CREATE TABLE pets (id INTEGER PRIMARY KEY, owner_ref INTEGER REFERENCES owners)")
    for library, follows in ((None, True), ({}, False)):
        reflected = Reflected(library=library)
        with engine.connect() as conn:
            with conn.begin():
                conn.exec_driver_sql("DELETE FROM pets")
            fill_database(conn, 2, reflected=reflected, marks=_fingerprints(conn))
            with conn.begin():  # owners made again with another primary key, as batch mode would
                conn.exec_driver_sql("CREATE TABLE owners_new (code INTEGER PRIMARY KEY, name VARCHAR(20))")
                conn.exec_driver_sql("DROP TABLE owners")
                conn.exec_driver_sql("ALTER TABLE owners_new RENAME TO owners")
            try:
                fill_database(conn, 2, seed=1, reflected=reflected, marks=_fingerprints(conn))
                [fk] = reflected.metadata.tables["pets"].foreign_keys
                target = fk.target_fullname
            except sa.exc.NoReferencedColumnError as exc:  # the copy's key: owners.id, which is gone
                target = str(exc)
            assert (target == "owners.code") is follows, (library, target)
            with conn.begin():  # back as it was, for the next round
                conn.exec_driver_sql("DELETE FROM pets")
                conn.exec_driver_sql("DROP TABLE owners")
                conn.exec_driver_sql("CREATE TABLE owners (id INTEGER PRIMARY KEY, name VARCHAR(20))")
    engine.dispose()
