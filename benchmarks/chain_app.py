"""Write a synthetic Flask-SQLAlchemy + Flask-Migrate app with a linear chain of N revisions (for chain_bench.py).

The chain repeats, every 4 revisions, one ``create table`` followed by three of the five other kinds of step,
rotating, so that every kind occurs about N/5 times and there are about N/4 tables:

- ``add_column``: a nullable INTEGER column ``score``;
- ``add_index``: an index on ``name`` (``ix_<table>_name``);
- ``add_fk``: a nullable ``parent_id`` column with a foreign key to the previous table (the first table: itself);
- ``batch_alter``: ``note`` widened from VARCHAR(40) to VARCHAR(120) in ``op.batch_alter_table`` (on SQLite a
  table rebuild);
- ``data_update``: ``UPDATE <table> SET visits = visits + 1`` (downgrade: ``- 1``).

Every downgrade is the exact inverse of its upgrade, and models.py describes head exactly (same naming
convention on the MetaData as the harness's own test projects, ``render_as_batch=True``), so the harness passes
every check on SQLite, PostgreSQL and MySQL/MariaDB. env.py, alembic.ini and script.py.mako are Flask-Migrate's
own templates, copied unchanged from the installed package.

The generated directory also holds ``floor.py`` (one process: upgrade head, downgrade base, upgrade head, with
Flask-Migrate's command API) and ``tests/conftest.py`` + ``pytest.ini`` for pytest-alembic's default tests.
"""
from __future__ import annotations

import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("add_column", "add_index", "add_fk", "batch_alter", "data_update")

# The same app factory as the harness's own test projects (tests/projects.py): one source for both.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from projects import APP_PY, REVISION  # noqa: E402

FLOOR_PY = '''\
"""The floor: one process, upgrade head, downgrade base, upgrade head, on DATABASE_URL."""
import flask_migrate

from app import create_app

app = create_app()
with app.app_context():
    flask_migrate.upgrade()
    flask_migrate.downgrade(revision="base")
    flask_migrate.upgrade()
'''

# pytest-alembic's fixtures for a Flask-Migrate app: every test gets a fresh database (a temporary SQLite file, or
# a new database on the server of MH_BENCH_ADMIN_URL) and runs inside the app's context, since Flask-Migrate's
# env.py takes its engine from current_app.
CONFTEST_PY = '''\
import os
import uuid

import pytest
import sqlalchemy as sa

ADMIN_URL = os.environ.get("MH_BENCH_ADMIN_URL", "")


@pytest.fixture
def scratch_url(tmp_path):
    if not ADMIN_URL:
        yield f"sqlite:///{tmp_path / 'scratch.sqlite'}"
        return
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    name = "pabench_" + uuid.uuid4().hex[:12]
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name}"))
        admin.dispose()


@pytest.fixture
def flask_app(scratch_url):
    from app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": scratch_url})
    with app.app_context():
        yield app


@pytest.fixture
def alembic_config(flask_app):
    from app import migrate

    return migrate.get_config()


@pytest.fixture
def alembic_engine(flask_app):
    from app import db

    yield db.engine
    db.engine.dispose()
'''

PYTEST_INI = '''\
[pytest]
pytest_alembic_tests_path = tests/conftest.py
addopts = -p no:cacheprovider
filterwarnings = ignore::DeprecationWarning
'''



@dataclass
class Table:
    index: int
    parent: str | None = None  # referred table of parent_id, when add_fk was applied
    kinds: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"t{self.index:03d}"


def _indent(code: str) -> str:
    return textwrap.indent(textwrap.dedent(code).strip("\n"), "    ")


def _step(kind: str, table: Table, previous: Table | None) -> tuple[str, str, str]:
    """(message, upgrade body, downgrade body) of one revision."""
    t = table.name
    if kind == "create_table":
        return f"create {t}", f'''
            op.create_table("{t}",
                sa.Column("id", sa.Integer(), nullable=False),
                sa.Column("name", sa.String(length=50), nullable=False),
                sa.Column("note", sa.String(length=40), nullable=True),
                sa.Column("visits", sa.Integer(), nullable=True),
                sa.PrimaryKeyConstraint("id", name=op.f("pk_{t}")))
        ''', f'op.drop_table("{t}")'
    if kind == "add_column":
        return f"add {t}.score", f'''
            with op.batch_alter_table("{t}") as batch_op:
                batch_op.add_column(sa.Column("score", sa.Integer(), nullable=True))
        ''', f'''
            with op.batch_alter_table("{t}") as batch_op:
                batch_op.drop_column("score")
        '''
    if kind == "add_index":
        return f"index {t}.name", f'''
            with op.batch_alter_table("{t}") as batch_op:
                batch_op.create_index(batch_op.f("ix_{t}_name"), ["name"], unique=False)
        ''', f'''
            with op.batch_alter_table("{t}") as batch_op:
                batch_op.drop_index(batch_op.f("ix_{t}_name"))
        '''
    if kind == "add_fk":
        parent = previous.name if previous else t
        table.parent = parent
        fk = f"fk_{t}_parent_id_{parent}"
        return f"fk {t}.parent_id to {parent}", f'''
            with op.batch_alter_table("{t}") as batch_op:
                batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
                batch_op.create_foreign_key(batch_op.f("{fk}"), "{parent}", ["parent_id"], ["id"])
        ''', f'''
            with op.batch_alter_table("{t}") as batch_op:
                batch_op.drop_constraint(batch_op.f("{fk}"), type_="foreignkey")
                batch_op.drop_column("parent_id")
        '''
    if kind == "batch_alter":
        return f"widen {t}.note", f'''
            with op.batch_alter_table("{t}") as batch_op:
                batch_op.alter_column("note", existing_type=sa.String(length=40), type_=sa.String(length=120),
                                      existing_nullable=True)
        ''', f'''
            with op.batch_alter_table("{t}") as batch_op:
                batch_op.alter_column("note", existing_type=sa.String(length=120), type_=sa.String(length=40),
                                      existing_nullable=True)
        '''
    if kind == "data_update":
        return f"bump {t}.visits", f'op.execute("UPDATE {t} SET visits = visits + 1")', \
            f'op.execute("UPDATE {t} SET visits = visits - 1")'
    raise ValueError(kind)


def _models(tables: list[Table]) -> str:
    out = ["import sqlalchemy as sa", "from app import db", ""]
    for table in tables:
        note = 120 if "batch_alter" in table.kinds else 40
        index = ", index=True" if "add_index" in table.kinds else ""
        out += ["", f"class T{table.index:03d}(db.Model):",
                f'    __tablename__ = "{table.name}"',
                "    id = db.Column(sa.Integer, primary_key=True)",
                f"    name = db.Column(sa.String(50), nullable=False{index})",
                f"    note = db.Column(sa.String({note}), nullable=True)",
                "    visits = db.Column(sa.Integer, nullable=True)"]
        if "add_column" in table.kinds:
            out.append("    score = db.Column(sa.Integer, nullable=True)")
        if "add_fk" in table.kinds:
            out.append(f'    parent_id = db.Column(sa.Integer, sa.ForeignKey("{table.parent}.id"), nullable=True)')
        out.append("")
    return "\n".join(out)


def plan(n: int) -> list[tuple[str, int]]:
    """The chain as (kind, table index) pairs: per block of 4, create table k, then 3 rotating kinds on it."""
    steps: list[tuple[str, int]] = []
    k = 0
    while len(steps) < n:
        steps.append(("create_table", k))
        for i in range(3):
            steps.append((KINDS[(3 * k + i) % len(KINDS)], k))
        k += 1
    return steps[:n]


def write_app(root: Path, n: int) -> dict[str, int]:
    """Write the app, its models at head and a chain of ``n`` revisions under ``root``; return counts per kind."""
    import flask_migrate

    template = Path(flask_migrate.__file__).parent / "templates" / "flask"
    if root.exists():
        shutil.rmtree(root)
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "app.py").write_text(APP_PY)
    (root / "floor.py").write_text(FLOOR_PY)
    (root / "tests" / "conftest.py").write_text(CONFTEST_PY)
    (root / "pytest.ini").write_text(PYTEST_INI)
    shutil.copy(template / "alembic.ini.mako", root / "migrations" / "alembic.ini")
    for name in ("env.py", "script.py.mako", "README"):
        shutil.copy(template / name, root / "migrations" / name)

    tables: dict[int, Table] = {}
    counts: dict[str, int] = {}
    down = None
    for number, (kind, k) in enumerate(plan(n), start=1):
        table = tables.setdefault(k, Table(k))
        message, up, dn = _step(kind, table, tables.get(k - 1))
        table.kinds.append(kind)
        counts[kind] = counts.get(kind, 0) + 1
        revision = f"r{number:04d}"
        (versions / f"{revision}_{message.replace(' ', '_').replace('.', '_')}.py").write_text(REVISION.format(
            message=message, revision=revision, down=down, down_revision=down, imports="", upgrade=_indent(up),
            downgrade=_indent(dn)))
        down = revision
    (root / "models.py").write_text(_models(list(tables.values())))
    return counts


if __name__ == "__main__":  # python benchmarks/chain_app.py DIR N: write one app to look at
    import sys

    print(write_app(Path(sys.argv[1]), int(sys.argv[2])))
