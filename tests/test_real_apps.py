"""[real-apps] what real Flask apps do that broke the harness: models a dialect cannot compile, a check that
raises, apps built at import time on a hard-coded database, factories with their own signatures, alembic
version_locations, data migrations that assume values the schema does not promise. Each test failed before its
fix; all run against real databases."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import AUTOGENERATE_COMPARES_TYPES, release
from projects import GOOD_MODELS, Rev, good_chain, make_project

ALL = ("sqlite", "postgresql", "mysql")

FETCH = Rev("a003", "create fetch", """
    op.create_table("fetch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.Enum("imap", "pop3", name="fetch_protocol"), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fetch")))
""", """
    op.drop_table("fetch")
    sa.Enum(name="fetch_protocol").drop(op.get_bind(), checkfirst=True)
""")
FETCH_MODEL = '''

class Fetch(db.Model):
    __tablename__ = "fetch"
    id = db.Column(sa.Integer, primary_key=True)
    protocol = db.Column(sa.Enum("imap", "pop3"{enum_name}), nullable=False)
    host = db.Column(sa.String({length}), nullable=True)
'''


def _fetch_models(enum_name: str = ', name="fetch_protocol"', length: str = "255") -> str:
    return GOOD_MODELS + FETCH_MODEL.format(enum_name=enum_name, length=length)


def test_models_a_dialect_cannot_compile_are_a_difference_on_that_database_only(harness, tmp_path: Path) -> None:
    """An unnamed Enum cannot be created on PostgreSQL, a String() without length not on MySQL: each is a
    difference of schema_matches_models there, the comparison goes on, and the downgrade still runs."""
    run = harness(make_project(tmp_path / "p", good_chain() + [FETCH], _fetch_models(enum_name="", length="")))
    assert run.statuses("upgrade") == {d: "passed" for d in ALL}
    assert run.statuses("downgrade") == {d: "passed" for d in ALL}
    assert run.statuses("leaves_no_trace") == {d: "passed" for d in ALL}
    assert run.statuses("schema_matches_models") == {d: "failed" for d in ALL}
    by_db = {d: {(x["table"], x["name"], x["aspect"]): x for x in run.check(d, "schema_matches_models")["differences"]}
             for d in ALL}
    # String() against VARCHAR(255): everywhere a type difference; on MySQL because it cannot even be created
    assert set(by_db["sqlite"]) == {("fetch", "host", "type")}
    assert by_db["sqlite"][("fetch", "host", "type")]["text"] == \
        "column fetch.host: type differs: models VARCHAR, database VARCHAR(255)"
    assert set(by_db["mysql"]) == {("fetch", "host", "type")}
    assert "mysql cannot create it: VARCHAR requires a length" in by_db["mysql"][("fetch", "host", "type")]["model"]
    assert set(by_db["postgresql"]) == {("fetch", "host", "type"), ("fetch", "protocol", "type")}
    assert "postgresql cannot create it" in by_db["postgresql"][("fetch", "protocol", "type")]["model"]
    assert "requires a name" in by_db["postgresql"][("fetch", "protocol", "type")]["text"]
    # `flask db migrate` fails the same way there: a finding, not an error of the harness (where autogenerate
    # compares types at all: not with alembic < 1.12 and Flask-Migrate 3.1, which pass these models)
    cannot = "failed" if AUTOGENERATE_COMPARES_TYPES else "passed"
    assert run.statuses("no_pending_autogenerate") == {"sqlite": "passed", "postgresql": cannot, "mysql": cannot}


def test_the_same_models_with_a_name_and_a_length_pass(harness, tmp_path: Path) -> None:
    run = harness(make_project(tmp_path / "p", good_chain() + [FETCH], _fetch_models()),
                  "--checks", "schema_matches_models,no_pending_autogenerate,leaves_no_trace")
    assert run.exit_code == 0, run.stdout + run.stderr


BROKEN_TYPE_MODELS = '''
class Picky(sa.types.TypeDecorator):
    """A custom type whose dialect hook is broken: any comparison that compiles it raises."""
    impl = sa.String
    cache_ok = True

    def load_dialect_impl(self, dialect):
        raise RuntimeError("picky type has no implementation for " + dialect.name)

''' + GOOD_MODELS.replace("sa.String(80)", "Picky(80)")


def test_a_check_that_raises_is_an_error_for_that_check_alone(harness, tmp_path: Path) -> None:
    run = harness(make_project(tmp_path / "p", good_chain(), BROKEN_TYPE_MODELS), "--verbose", db=("sqlite", "mysql"))
    assert run.exit_code == 1
    for dialect in ("sqlite", "mysql"):
        check = run.check(dialect, "schema_matches_models")
        assert check["status"] == "error"
        assert "raised RuntimeError: picky type has no implementation for" in check["message"]
        assert "Traceback" in check["traceback"] and "load_dialect_impl" in check["traceback"]
        # what comes after still ran: the downgrade and leaves_no_trace have their own verdicts
        assert run.check(dialect, "downgrade")["status"] == "passed"
        assert run.check(dialect, "leaves_no_trace")["status"] == "passed"
        assert run.check(dialect, "stairway")["status"] == "passed"
    assert "| Traceback" in run.stdout  # --verbose prints it


# -- the app as written: import-time apps on a hard-coded database, factories with their own signatures ---------

TUTORIAL_APP = '''
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = {uri!r}
app.config["SQLALCHEMY_BINDS"] = {binds!r}
db = SQLAlchemy(app)
migrate = Migrate(app, db, render_as_batch=True)

import models  # noqa: E402,F401
'''


def _tutorial(tmp_path: Path, uri: str, binds: dict | None = None, models: str = GOOD_MODELS) -> Path:
    project = make_project(tmp_path / "p", good_chain(), models)
    (project / "app.py").write_text(TUTORIAL_APP.format(uri=uri, binds=binds or {}))
    return project


def test_a_tutorial_app_on_a_hard_coded_database_runs_on_the_scratch_databases(harness, tmp_path: Path) -> None:
    """``db = SQLAlchemy(app)`` at import time with a hard-coded URI: the harness binds its scratch database
    anyway, and the configured database is never connected to (SQLite would have created the file)."""
    precious = tmp_path / "blog.db"
    run = harness(_tutorial(tmp_path, f"sqlite:///{precious}"), "--app", "app")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.statuses("upgrade") == {d: "passed" for d in ALL}
    assert not precious.exists()


def test_a_production_url_in_the_config_is_never_used(harness, tmp_path: Path) -> None:
    project = _tutorial(tmp_path, "mysql+pymysql://prod:s3cr3t-prod@127.0.0.1:1/production")
    run = harness(project, "--app", "app:app", "--checks", "upgrade,schema_matches_models", db=("sqlite", "mysql"))
    assert run.exit_code == 0, run.stdout + run.stderr
    assert "s3cr3t-prod" not in run.stdout + run.stderr


BIND_MODELS = GOOD_MODELS + '''

class Audit(db.Model):
    __bind_key__ = "audit"
    __tablename__ = "audit"
    id = db.Column(sa.Integer, primary_key=True)
'''


# Flask-SQLAlchemy 2.5 keeps every bind's tables on the one db.metadata that Flask-Migrate's single-database env.py
# autogenerates from: there `flask db check` (and so the harness) wants the audit table in the default database.
@pytest.mark.skipif(release("Flask-SQLAlchemy") < (3, 0), reason="Flask-SQLAlchemy 2.5 has one MetaData for all binds")
def test_other_binds_get_throwaway_files_and_are_never_connected_to(harness, tmp_path: Path) -> None:
    audit = tmp_path / "audit.db"
    project = _tutorial(tmp_path, f"sqlite:///{tmp_path / 'blog.db'}", {"audit": f"sqlite:///{audit}"}, BIND_MODELS)
    run = harness(project, "--app", "app", db=("sqlite", "postgresql"))
    assert run.exit_code == 0, run.stdout + run.stderr
    assert not audit.exists() and not (tmp_path / "blog.db").exists()


def test_a_multi_database_env_py_with_binds_is_refused_by_the_single_database_commands(tmp_path: Path) -> None:
    """`run` checks each bind of a multidb app (tests/test_multidb.py); `lint` and the other rollout commands
    check one database and refuse it, saying which command does."""
    import shutil

    from conftest import run_cli
    from projects import TEMPLATE

    project = _tutorial(tmp_path, "sqlite:///x.db", {"audit": "sqlite:///audit.db"}, BIND_MODELS)
    shutil.copy(TEMPLATE.parent / "flask-multidb" / "env.py", project / "migrations" / "env.py")
    proc = run_cli(["lint", "--app", "app", "--db", "sqlite"], project)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "this command checks single-database apps only" in proc.stderr and "audit" in proc.stderr
    assert "`migration-harness run` checks each bind" in proc.stderr


FACTORIES = '''
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

from app import NAMING, db, migrate


class Config:
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or "sqlite:///dev.db"


class ProductionConfig(Config):
    SQLALCHEMY_DATABASE_URI = "postgresql://prod@127.0.0.1:1/prod"


CONFIGS = {"development": Config, "production": ProductionConfig}


def _build(config_object):
    app = Flask(__name__)
    app.config.from_object(config_object)
    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True)
    import models  # noqa: F401
    return app


def by_class(config_class=ProductionConfig):
    return _build(config_class)


def by_name(config_name="production"):
    return _build(CONFIGS[config_name])


def by_url(database_url=None):
    app = _build(Config)
    assert database_url is None, database_url
    return app


def needs_a_name(config_name):
    return _build(CONFIGS[config_name])
'''


def test_factories_are_called_the_way_flask_calls_them(harness, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "factories.py").write_text(FACTORIES)
    for app in ("factories:by_class", "factories:by_name", "factories:by_url", "factories:needs_a_name('production')"):
        run = harness(project, "--app", app, "--checks", "upgrade,schema_matches_models", db=("sqlite", "postgresql"))
        assert run.exit_code == 0, (app, run.stdout + run.stderr)


def test_a_factory_that_needs_arguments_is_a_one_line_usage_error(tmp_path: Path) -> None:
    from conftest import run_cli

    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "factories.py").write_text(FACTORIES)
    proc = run_cli(["run", "--app", "factories:needs_a_name", "--db", "sqlite"], project)
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        next(line for line in proc.stderr.splitlines() if line.startswith("migration-harness: error:"))]
    assert "could not be called with the specified arguments" in proc.stderr


# -- finding the app and its migrations the way `flask` does ---------------------------------------------------

def test_without_app_it_finds_app_py_or_the_flaskenv_like_flask(harness, tmp_path: Path) -> None:
    from conftest import run_cli

    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    clear = {"FLASK_APP": "", "HARNESS_APP": ""}
    proc = run_cli(["run", "--db", "sqlite", "--checks", "upgrade"], project, clear)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (project / "app.py").rename(project / "application.py")
    (project / "models.py").write_text((project / "models.py").read_text().replace("from app import", "from application import"))
    proc = run_cli(["run", "--db", "sqlite", "--checks", "upgrade"], project, clear)
    assert proc.returncode == 2 and "no app given" in proc.stderr
    (project / ".flaskenv").write_text("FLASK_APP=application:create_app\n")
    proc = run_cli(["run", "--db", "sqlite", "--checks", "upgrade"], project, clear)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_app_given_as_a_file_path_finds_its_migrations_next_to_it(harness, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    from conftest import run_cli

    proc = run_cli(["run", "--app", str(project / "app.py"), "--db", "sqlite", "--checks", "upgrade,schema_matches_models"],
                   elsewhere)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 revisions applied" in proc.stdout


SRC_WSGI = '''
import os
import sys

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from app import create_app  # noqa: E402  (the project's own app package, under src/)

app = create_app()
'''


def test_the_harness_checkout_never_leaks_into_the_users_app(harness, tmp_path: Path) -> None:
    """The harness's source checkout holds an example package named ``app``; a user's ``app`` (here under
    ``src/``, put on sys.path by the app itself) must be the one imported."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "src").mkdir()
    for name in ("app.py", "models.py"):
        (project / name).rename(project / "src" / name)
    (project / "wsgi.py").write_text(SRC_WSGI)
    run = harness(project, "--app", "wsgi", "--checks", "upgrade,schema_matches_models", db=("sqlite",))
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.check("sqlite", "schema_matches_models")["message"].startswith("2 model tables match")


# -- alembic's version_locations --------------------------------------------------------------------------------

PLUGIN = Rev("p001", "create tags", """
    op.create_table("tags", sa.Column("id", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")))
""", 'op.drop_table("tags")', down_revision=None)
TAGS = '\n\nclass Tag(db.Model):\n    __tablename__ = "tags"\n    id = db.Column(sa.Integer, primary_key=True)\n'


def test_revisions_in_several_version_locations_are_all_walked(harness, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain() + [PLUGIN], GOOD_MODELS + TAGS)
    migrations = project / "migrations"
    (migrations / "core").mkdir()
    (migrations / "plugins").mkdir()
    for script in (migrations / "versions").glob("*.py"):
        script.rename(migrations / ("plugins" if script.name.startswith("p001") else "core") / script.name)
    (migrations / "versions").rmdir()
    ini = migrations / "alembic.ini"
    ini.write_text(ini.read_text().replace("[alembic]\n", "[alembic]\nversion_locations = %(here)s/core %(here)s/plugins\n"))
    run = harness(project, "--allow-multiple-heads")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert sorted(run.report["heads"]) == ["a002", "p001"]
    assert run.check("sqlite", "upgrade")["message"].startswith("3 revisions applied")
    assert run.statuses("leaves_no_trace") == {d: "passed" for d in ALL}


# -- data: a migration that assumes a value the schema does not promise -----------------------------------------

DOMAINS = Rev("d001", "create domains and alternatives", """
    op.create_table("domain", sa.Column("name", sa.String(length=80), nullable=False),
                    sa.PrimaryKeyConstraint("name", name=op.f("pk_domain")))
    op.create_table("alternative",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=80), nullable=False),
        sa.Column("note", sa.String(length=80), nullable=True),
        sa.Column("domain_name", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(["domain_name"], ["domain.name"], name=op.f("fk_alternative_domain_name_domain")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alternative")))
""", 'op.drop_table("alternative")\nop.drop_table("domain")', down_revision=None)


def _lowercase(column: str) -> Rev:
    return Rev("d002", f"lowercase {column}", f"""
    conn = op.get_bind()
    for row in conn.execute(sa.text("SELECT id, {column} FROM alternative")).fetchall():
        conn.execute(sa.text("UPDATE alternative SET {column} = :v WHERE id = :id"),
                     {{"v": row.{column}.lower(), "id": row.id}})
""", "pass")


DOMAIN_MODELS = '''
class Domain(db.Model):
    __tablename__ = "domain"
    name = db.Column(sa.String(80), primary_key=True)


class Alternative(db.Model):
    __tablename__ = "alternative"
    id = db.Column(sa.Integer, primary_key=True)
    host = db.Column(sa.String(80), nullable=False)
    note = db.Column(sa.String(80), nullable=True)
    domain_name = db.Column(sa.String(80), sa.ForeignKey("domain.name"), nullable=True)
'''


def test_foreign_keys_point_at_existing_parents(harness, tmp_path: Path) -> None:
    """Generated rows reference a parent whenever one exists: a data migration following the reference does not
    fail on a NULL the harness made up."""
    run = harness(make_project(tmp_path / "p", [DOMAINS, _lowercase("domain_name")], DOMAIN_MODELS),
                  "--checks", "data", db=("sqlite", "postgresql"))
    assert run.exit_code == 0, run.stdout + run.stderr


def test_a_step_that_fails_only_on_nulls_says_which_column(harness, tmp_path: Path) -> None:
    run = harness(make_project(tmp_path / "p", [DOMAINS, _lowercase("note")], DOMAIN_MODELS),
                  "--checks", "data", db=("sqlite", "mysql"))
    assert run.exit_code == 1
    for dialect in ("sqlite", "mysql"):
        check = run.check(dialect, "data")
        assert (check["status"], check["revision"]) == ("failed", "d002")
        assert "'NoneType' object has no attribute 'lower'" in check["message"]
        assert "it fails only when alternative.note is NULL, which the schema allows" in check["message"]


def test_a_step_that_fails_with_any_rows_is_not_blamed_on_nulls(harness, tmp_path: Path) -> None:
    broken = Rev("d002", "add a required column", """
    op.add_column("alternative", sa.Column("weight", sa.Integer(), nullable=False))
""", 'op.drop_column("alternative", "weight")')
    run = harness(make_project(tmp_path / "p", [DOMAINS, broken], DOMAIN_MODELS), "--checks", "data",
                  db=("postgresql",))
    check = run.check("postgresql", "data")
    assert (check["status"], check["revision"]) == ("failed", "d002")
    assert "fails only when" not in check["message"]


# -- models on a MetaData of their own, which env.py hands to autogenerate ---------------------------------------

MANAGER = Rev("a003", "create manager", """
    op.create_table("manager", sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("name", sa.String(length=40), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_manager")))
""", 'op.drop_table("manager")')
BASE_MODELS = GOOD_MODELS + '''

Base = sa.orm.declarative_base()


class Manager(Base):
    __tablename__ = "manager"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(40), nullable=False)
'''
ENV_OVERRIDE = '''
import models as _models  # noqa: E402


def get_metadata():
    return _models.Base.metadata


target_metadata = _models.Base.metadata


def run_migrations_offline'''


def test_models_on_the_metadata_env_py_uses_are_compared_too(harness, tmp_path: Path) -> None:
    """Like Mailu: most models on db.metadata, one on a declarative Base whose MetaData env.py hands to
    autogenerate. The models are all of them: no bogus "table manager: in the database but not in the models"."""
    project = make_project(tmp_path / "p", good_chain() + [MANAGER], BASE_MODELS)
    env_py = project / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace("\ndef run_migrations_offline", ENV_OVERRIDE, 1))
    run = harness(project, "--checks", "schema_matches_models,no_pending_autogenerate", db=("sqlite", "postgresql"))
    for dialect in ("sqlite", "postgresql"):
        check = run.check(dialect, "schema_matches_models")
        assert check["status"] == "passed", check
        assert "3 model tables match" in check["message"]
        assert "other MetaData env.py hands to autogenerate" in check["message"]
        # what `flask db check` says with this env.py: users and posts are not in its MetaData
        pending = run.check(dialect, "no_pending_autogenerate")
        assert pending["status"] == "failed"
        assert {(d["table"], d["aspect"]) for d in pending["differences"]} == {("users", "extra"), ("posts", "extra")}
