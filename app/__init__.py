"""Example blog app that the migration harness verifies on itself."""
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

# Deterministic constraint names, so every migration can drop what it created
# (https://alembic.sqlalchemy.org/en/latest/naming.html).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))

# The chain lives next to the package, so `flask db` works from any directory. Batch mode
# lets SQLite, which has almost no ALTER TABLE, run the same scripts.
MIGRATIONS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations"
)
migrate = Migrate(directory=MIGRATIONS_DIR, render_as_batch=True, compare_type=True)


def create_app(config=None):
    """Build the app; the database URL comes from `config`, then $DATABASE_URL,
    then a SQLite file in the instance folder."""
    app = Flask(__name__)
    config = dict(config or {})
    uri = config.pop("SQLALCHEMY_DATABASE_URI", None) or os.environ.get("DATABASE_URL")
    if not uri:
        os.makedirs(app.instance_path, exist_ok=True)
        uri = "sqlite:///" + os.path.join(app.instance_path, "blog.db")
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    app.config.update(config)

    db.init_app(app)
    migrate.init_app(app, db)

    from . import models  # noqa: F401  (registers the tables on db.metadata)

    return app
