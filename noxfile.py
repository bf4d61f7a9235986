"""Sessions: ``nox -s migrations`` verifies the example app's chain on every database; ``nox -s tests`` runs the
test suite. Both install this repository into their own virtualenv (reused between runs)."""
from __future__ import annotations

import nox

nox.options.reuse_venv = "yes"
nox.options.sessions = ["migrations"]

DATABASES = ["sqlite", "postgresql", "mysql"]


@nox.session
@nox.parametrize("db", DATABASES)
def migrations(session: nox.Session, db: str) -> None:
    """Run the harness on app/ and migrations/ against one database (all three without a filter)."""
    session.install("-e", ".")
    session.run("migration-harness", "run", "--app", "app:create_app", "--migrations", "migrations",
                "--db", db, "--json", f"reports/migrations-{db}.json", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against real SQLite, PostgreSQL and MySQL (containers and the local servers)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)
