"""A multi-database Flask-Migrate project for the tests (``flask db init --multidb``): a main database and binds,
each revision with ``upgrade_<bind>()`` / ``downgrade_<bind>()`` as Flask-Migrate's multidb script template writes
them. The env.py is Flask-Migrate's own multidb template, copied unchanged from the app's interpreter's
Flask-Migrate."""
from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from projects import flask_migrate_template

APP_PY = '''\
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

NAMING = {{
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}}
db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///main.db"
    app.config["SQLALCHEMY_BINDS"] = {binds!r}
    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True)
    import models  # noqa: F401
    return app
'''

#: items in the main database, users in the bind ``users``
MODELS = '''\
import sqlalchemy as sa
from app import db


class Item(db.Model):
    __tablename__ = "items"
    id = db.Column(sa.Integer, primary_key=True)
    title = db.Column(sa.String(80), nullable=False)
    price = db.Column(sa.Integer, nullable=True)


class User(db.Model):
    __bind_key__ = "users"
    __tablename__ = "users"
    id = db.Column(sa.Integer, primary_key=True)
    email = db.Column(sa.String(120), nullable=False)
    name = db.Column(sa.String(80), nullable=True, index=True)
'''

#: events in a third database, the bind ``analytics``
ANALYTICS_MODELS = '''

class Event(db.Model):
    __bind_key__ = "analytics"
    __tablename__ = "events"
    id = db.Column(sa.Integer, primary_key=True)
    kind = db.Column(sa.String(40), nullable=False)
'''

REVISION = '''\
"""{message}

Revision ID: {revision}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()
{functions}'''


@dataclass(frozen=True)
class MultiRev:
    """One revision of every database: engine name (``""`` the main one) → (upgrade body, downgrade body)."""

    revision: str
    message: str
    bodies: dict[str, tuple[str, str]] = field(default_factory=dict)


def _body(code: str) -> str:
    return textwrap.indent(textwrap.dedent(code).strip("\n") or "pass", "    ")


CREATE = MultiRev("m001", "create items and users", {
    "": ("""
        op.create_table("items",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("title", sa.String(length=80), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_items")))
    """, 'op.drop_table("items")'),
    "users": ("""
        op.create_table("users",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("email", sa.String(length=120), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_users")))
    """, 'op.drop_table("users")'),
})

ADD_COLUMNS = MultiRev("m002", "add items price and users name", {
    "": ("""
        with op.batch_alter_table("items") as batch_op:
            batch_op.add_column(sa.Column("price", sa.Integer(), nullable=True))
    """, """
        with op.batch_alter_table("items") as batch_op:
            batch_op.drop_column("price")
    """),
    "users": ("""
        with op.batch_alter_table("users") as batch_op:
            batch_op.add_column(sa.Column("name", sa.String(length=80), nullable=True))
            batch_op.create_index(batch_op.f("ix_users_name"), ["name"], unique=False)
    """, """
        with op.batch_alter_table("users") as batch_op:
            batch_op.drop_index(batch_op.f("ix_users_name"))
            batch_op.drop_column("name")
    """),
})

ANALYTICS = {"analytics": ("""
    op.create_table("events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")))
""", 'op.drop_table("events")')}


def good_chain() -> list[MultiRev]:
    return [CREATE, ADD_COLUMNS]


def make_multidb_project(root: Path, revisions: list[MultiRev], models: str = MODELS,
                         binds: dict[str, str] | None = None, python: str | None = None) -> Path:
    """``app.py`` (main database and ``binds``, each hard-coded as a tutorial would), ``models.py`` and a
    ``migrations/`` directory made by Flask-Migrate's multidb template of the app's interpreter ``python``."""
    binds = binds if binds is not None else {"users": "sqlite:///users.db"}
    root.mkdir(parents=True, exist_ok=True)
    (root / "app.py").write_text(APP_PY.format(binds=binds))
    (root / "models.py").write_text(models)
    template = flask_migrate_template(python).parent / "flask-multidb"
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    for name in ("alembic.ini.mako", "env.py", "script.py.mako", "README"):
        shutil.copy(template / name, root / "migrations" / name.removesuffix(".mako") if name == "alembic.ini.mako"
                    else root / "migrations" / name)
    previous = None
    for rev in revisions:
        functions = ""
        for engine in ("", *binds):
            up, down = rev.bodies.get(engine, ("pass", "pass"))
            functions += (f"\n\ndef upgrade_{engine}():\n{_body(up)}\n\n\ndef downgrade_{engine}():\n{_body(down)}\n")
        (versions / f"{rev.revision}.py").write_text(REVISION.format(
            message=rev.message, revision=rev.revision, down=previous, functions=functions))
        previous = rev.revision
    return root
