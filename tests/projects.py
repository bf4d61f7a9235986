"""Build small Flask-Migrate projects on disk for tests: an app factory, models, and a chain of revisions.

Each test writes exactly the chain it needs (a good one, or one broken in one place) instead of sharing fixtures
that drift. The env.py, alembic.ini and script.py.mako are Flask-Migrate's own, copied unchanged.
"""
from __future__ import annotations

import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import flask_migrate

from stacks import app_python


def flask_migrate_template(python: str | None = None) -> Path:
    """Flask-Migrate's ``flask`` template of the app's interpreter ``python`` (``HARNESS_TEST_APP_PYTHON``'s when
    the tests run the worker in another environment: a 2020 stack's env.py differs from today's), else this one's."""
    python = python or app_python()
    if not python:
        return Path(flask_migrate.__file__).parent / "templates" / "flask"
    found = subprocess.run([python, "-c", "import flask_migrate; print(flask_migrate.__file__)"], check=True,
                           capture_output=True, text=True).stdout.strip()
    return Path(found).parent / "templates" / "flask"


TEMPLATE = flask_migrate_template()

APP_PY = '''\
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()


def create_app(config=None):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = (config or {}).get("SQLALCHEMY_DATABASE_URI") or os.environ["DATABASE_URL"]
    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True)
    import models  # noqa: F401
    return app
'''

MODELS_HEADER = "import sqlalchemy as sa\nfrom app import db\n\n"

REVISION = '''\
"""{message}

Revision ID: {revision}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa
{imports}
revision = {revision!r}
down_revision = {down_revision!r}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''


@dataclass(frozen=True)
class Rev:
    """One revision: its id, message, and the bodies of upgrade() and downgrade()."""

    revision: str
    message: str
    upgrade: str
    downgrade: str
    down_revision: str | tuple[str, ...] | None = "<previous>"
    imports: str = ""


def _body(code: str) -> str:
    code = textwrap.dedent(code).strip("\n") or "pass"
    return textwrap.indent(code, "    ")


#: appended to a project's app.py: each load of the app notes itself in $HARNESS_TEST_LOADS and takes a second more
SLOW_LOAD = '''

_create_app = create_app


def create_app(config=None):
    import time
    with open(os.environ["HARNESS_TEST_LOADS"], "a") as f:
        f.write("load\\n")
    time.sleep(1)
    return _create_app(config)
'''


def make_project(root: Path, revisions: list[Rev], models: str = "", template: Path | None = None) -> Path:
    """Write ``app.py``, ``models.py`` and ``migrations/`` under ``root``; return ``root``.

    Revisions chain linearly unless a :class:`Rev` names its ``down_revision`` explicitly. ``template``: the
    Flask-Migrate template directory to copy (default :data:`TEMPLATE`).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "app.py").write_text(APP_PY)
    (root / "models.py").write_text(MODELS_HEADER + textwrap.dedent(models))
    migrations = root / "migrations"
    versions = migrations / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    for name in ("alembic.ini.mako", "env.py", "script.py.mako", "README"):
        shutil.copy((template or TEMPLATE) / name, migrations / name.removesuffix(".mako") if name == "alembic.ini.mako"
                    else migrations / name)
    previous = None
    for rev in revisions:
        down = previous if rev.down_revision == "<previous>" else rev.down_revision
        (versions / f"{rev.revision}_{rev.message.replace(' ', '_')[:30]}.py").write_text(REVISION.format(
            message=rev.message, revision=rev.revision, down=down, down_revision=down,
            upgrade=_body(rev.upgrade), downgrade=_body(rev.downgrade), imports=rev.imports))
        previous = rev.revision
    return root


# A small correct chain most tests start from: users, then posts with a FK and an index.
USERS = Rev("a001", "create users", """
    op.create_table("users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")))
""", 'op.drop_table("users")')

POSTS = Rev("a002", "create posts", """
    op.create_table("posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_posts_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posts")))
    with op.batch_alter_table("posts") as batch_op:
        batch_op.create_index(batch_op.f("ix_posts_title"), ["title"], unique=False)
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_index(batch_op.f("ix_posts_title"))
    op.drop_table("posts")
""")

GOOD_MODELS = '''
class User(db.Model):
    __tablename__ = "users"
    id = db.Column(sa.Integer, primary_key=True)
    name = db.Column(sa.String(80), nullable=False)


class Post(db.Model):
    __tablename__ = "posts"
    id = db.Column(sa.Integer, primary_key=True)
    user_id = db.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=False)
    title = db.Column(sa.String(200), nullable=False, index=True)
'''


def good_chain() -> list[Rev]:
    return [USERS, POSTS]


# A deliberately tricky but correct model set: every type and constraint that reflects differently somewhere.
TRICKY_MODELS = '''
import enum


class Mood(enum.Enum):
    happy = "happy"
    sad = "sad"


class Thing(db.Model):
    __tablename__ = "things"
    __table_args__ = (
        sa.CheckConstraint("price >= 0", name="price_positive"),
        sa.UniqueConstraint("code", name="uq_things_code"),
        sa.Index("ix_things_kind_label", "kind", "label"),
    )
    id = db.Column(sa.Integer, primary_key=True)
    code = db.Column(sa.String(20), nullable=False)
    kind = db.Column(sa.String(30), nullable=False)
    label = db.Column(sa.String(50), nullable=False)
    active = db.Column(sa.Boolean, nullable=False, server_default=sa.false())
    status = db.Column(sa.Enum("draft", "published", name="thing_status"), nullable=False, server_default="draft")
    mood = db.Column(sa.Enum(Mood, name="mood", native_enum=False, length=10), nullable=True)
    attrs = db.Column(sa.JSON, nullable=True)
    created_at = db.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    price = db.Column(sa.Numeric(10, 2), nullable=False, server_default="0")
    notes = db.Column(sa.Text, nullable=True)
    parent_id = db.Column(sa.Integer, sa.ForeignKey("things.id", ondelete="SET NULL"), nullable=True)


class Pair(db.Model):
    __tablename__ = "pairs"
    left_id = db.Column(sa.Integer, sa.ForeignKey("things.id", ondelete="CASCADE"), primary_key=True)
    right_id = db.Column(sa.Integer, sa.ForeignKey("things.id", ondelete="CASCADE"), primary_key=True)
    weight = db.Column(sa.Integer, nullable=False, server_default="1")
'''

TRICKY_THINGS = Rev("b001", "create things", """
    op.create_table("things",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("label", sa.String(length=50), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.Enum("draft", "published", name="thing_status"), server_default="draft", nullable=False),
        sa.Column("mood", sa.Enum("happy", "sad", name="mood", native_enum=False, length=10), nullable=True),
        sa.Column("attrs", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("price", sa.Numeric(precision=10, scale=2), server_default="0", nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("price >= 0", name=op.f("ck_things_price_positive")),
        sa.ForeignKeyConstraint(["parent_id"], ["things.id"], name=op.f("fk_things_parent_id_things"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_things")),
        sa.UniqueConstraint("code", name="uq_things_code"))
    with op.batch_alter_table("things") as batch_op:
        batch_op.create_index("ix_things_kind_label", ["kind", "label"], unique=False)
""", """
    with op.batch_alter_table("things") as batch_op:
        batch_op.drop_index("ix_things_kind_label")
    op.drop_table("things")
    sa.Enum(name="thing_status").drop(op.get_bind(), checkfirst=True)
""")

TRICKY_PAIRS = Rev("b002", "create pairs", """
    op.create_table("pairs",
        sa.Column("left_id", sa.Integer(), nullable=False),
        sa.Column("right_id", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(["left_id"], ["things.id"], name=op.f("fk_pairs_left_id_things"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["right_id"], ["things.id"], name=op.f("fk_pairs_right_id_things"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("left_id", "right_id", name=op.f("pk_pairs")))
""", 'op.drop_table("pairs")')


def tricky_chain() -> list[Rev]:
    return [TRICKY_THINGS, TRICKY_PAIRS]


#: the env.py shape of Flask-Migrate's older templates (and of many apps): its own engine from the URL in the config
OWN_ENGINE_ENV = '''\
from alembic import context
from flask import current_app
from sqlalchemy import engine_from_config, pool

config = context.config
config.set_main_option("sqlalchemy.url", current_app.config.get("SQLALCHEMY_DATABASE_URI").replace("%", "%%"))
target_metadata = current_app.extensions["migrate"].db.metadata


def run_migrations_online():
    engine = engine_from_config(config.get_section(config.config_ini_section), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    connection = engine.connect()
    context.configure(connection=connection, target_metadata=target_metadata)
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.close()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"))
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
'''
