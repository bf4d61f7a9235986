"""A pytest plugin (entry point ``pytest11``): ``pytest --migrations`` adds one test item per database × check,
so a team gets the harness's verdicts in its usual pytest report, ``-k mysql`` and ``-k stairway`` work, and a
failing item shows the revision, the database's error and the differences::

    pytest --migrations --migrations-app myapp:create_app --migrations-db sqlite,postgresql

The harness runs once per pytest session (on the first item), exactly as ``migration-harness run`` would, with
the same configuration (flags here, then the environment, then ``[tool.migration-harness]``).
"""
from __future__ import annotations

from typing import Any

import pytest

from .results import ERROR, FAILED, PASSED, SKIPPED, RunResult


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("migrations", "migration-harness")
    group.addoption("--migrations", action="store_true", help="Verify the Flask-Migrate chain: one item per "
                    "database × check.")
    group.addoption("--migrations-app", metavar="APP", help="The Flask app, as for `flask --app`.")
    group.addoption("--migrations-db", metavar="NAMES", help="Databases, comma-separated (default: all).")
    group.addoption("--migrations-checks", metavar="NAMES", help="Checks, comma-separated (default: all).")
    group.addoption("--migrations-python", metavar="PATH", help="The app's interpreter, which loads the app "
                    "(default: the active virtualenv's, else pytest's own).")


class MigrationsRun:
    """The one harness run of this pytest session, started by the first item that needs it."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.result: RunResult | None = None
        self.error: str | None = None
        #: (database, check) of the items left after ``-k`` / ``-m`` / ``--deselect``: only those run
        self.selected: set[tuple[str, str]] | None = None

    def selected_config(self) -> Any:
        """The run's settings narrowed to the selected items: a database no selected item needs is never
        started (``-k sqlite`` starts no container), a check none needs never runs (what checks need still does)."""
        import dataclasses

        if self.selected is None:
            return self.config
        dialects = {dialect for dialect, _ in self.selected}
        checks = {check for _, check in self.selected}
        return dataclasses.replace(self.config,
                                   databases=tuple(d for d in self.config.databases if d.dialect in dialects),
                                   checks=tuple(c for c in self.config.checks if c in checks))

    def get(self, items: list[Any]) -> RunResult:
        """The run's result; the run covers only the databases and checks of the selected ``items`` (``-k mysql``
        starts no other database)."""
        if self.result is None and self.error is None:
            from dataclasses import replace

            from .errors import HarnessError
            from .run.runner import run

            chosen = [i for i in items if isinstance(i, MigrationItem)]
            dialects, checks = {i.dialect for i in chosen}, {i.check for i in chosen}
            config = replace(self.config, databases=tuple(d for d in self.config.databases if d.dialect in dialects),
                             checks=tuple(c for c in self.config.checks if c in checks))
            try:
                self.result = run(self.selected_config())
            except HarnessError as exc:
                self.error = str(exc)
        if self.error is not None:
            raise MigrationsFailure(f"the harness could not run: {self.error}")
        assert self.result is not None
        return self.result


class MigrationsFailure(Exception):
    """A check that failed (or could not finish) on one database."""


class MigrationItem(pytest.Item):
    def __init__(self, *, dialect: str, check: str, shared: MigrationsRun, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dialect, self.check, self.shared = dialect, check, shared

    def runtest(self) -> None:
        result = self.shared.get(self.session.items)
        database = next((d for d in result.databases if d.dialect == self.dialect), None)
        if database is None:
            raise MigrationsFailure(f"{self.dialect} was not run")
        # a multi-database app has the check once per database (bind): the item fails when any of them does
        matching = [c for c in database.checks if c.name == self.check]
        check = next((c for c in matching if c.status in (FAILED, ERROR)), None) or next(iter(matching), None)
        if check is None:  # the database could not be provided
            if database.status == SKIPPED:
                pytest.skip(database.message)
            raise MigrationsFailure(f"{self.dialect}: {database.message or 'the check did not run'}")
        if check.status == PASSED:
            return
        if check.status == SKIPPED:
            pytest.skip(check.message)
        lines = [f"{check.label} {check.status} on {self.dialect}" + (f" at revision {check.revision}"
                                                                       if check.revision else ""), check.message]
        lines += [f"  - {d.get('text', '')}" for d in check.differences]
        if check.traceback:
            lines += ["", check.traceback.rstrip()]
        raise MigrationsFailure("\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, MigrationsFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"migrations: {self.dialect} {self.check}"


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect: they must see these items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("migrations"):
        return
    from .config import build_config
    from .errors import HarnessError

    db = config.getoption("migrations_db")
    checks = config.getoption("migrations_checks")
    try:
        run_config = build_config(app=config.getoption("migrations_app"), db=(db,) if db else (),
                                  checks=(checks,) if checks else (), cwd=str(config.invocation_params.dir),
                                  python=config.getoption("migrations_python"))
    except HarnessError as exc:
        raise pytest.UsageError(f"--migrations: {exc}") from exc
    shared = MigrationsRun(run_config)
    added = [MigrationItem.from_parent(session, name=f"migrations[{settings.dialect}-{check}]",
                                       dialect=settings.dialect, check=check, shared=shared)
             for settings in run_config.databases for check in run_config.checks]
    # reported as collected, so that pytest counts them ("collected 3 items / 2 deselected / 1 selected"; without
    # this the header subtracts deselected items it never counted)
    config.hook.pytest_collectreport(report=pytest.CollectReport("", "passed", None, added))
    items.extend(added)
    config.stash[_SHARED] = shared


_SHARED = pytest.StashKey[MigrationsRun]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember which items survived ``-k`` / ``-m`` / ``--deselect``, so that the one run starts only those."""
    shared = session.config.stash.get(_SHARED, None)
    if shared is not None:
        shared.selected = {(i.dialect, i.check) for i in session.items if isinstance(i, MigrationItem)}


__all__ = ["MigrationItem", "MigrationsFailure"]


# -- a fixture for a team's own tests: a scratch database at head -------------------------------------------------

@pytest.fixture(scope="session")
def _migration_servers(pytestconfig: pytest.Config) -> Any:
    """One server per dialect for the whole session (a container, a server URL or a temporary directory), started
    when a test first asks for that dialect."""
    import contextlib

    from .backends import get_backend
    from .backends.base import new_run_id
    from .run.clean import registered_run
    from .config import build_config

    import os

    run_id = os.environ.get("HARNESS_RUN_ID") or new_run_id()
    stack = contextlib.ExitStack()
    stack.enter_context(registered_run(run_id))
    servers: dict[str, Any] = {}

    def server(dialect: str) -> tuple[Any, Any]:
        """The dialect's sessions (one worker, the app loaded once, a fresh scratch database per test)."""
        from .config.redact import secrets_of
        from .run.runner import _spec
        from .run.sessions import DatabaseSessions

        config = build_config(app=pytestconfig.getoption("migrations_app"), db=(dialect,),
                              cwd=str(pytestconfig.invocation_params.dir),
                              python=pytestconfig.getoption("migrations_python"))
        if dialect not in servers:
            settings = config.databases[0]
            found = stack.enter_context(get_backend(dialect).server(settings, run_id))
            servers[dialect] = stack.enter_context(DatabaseSessions(
                found, _spec(config, "", dialect, "chain", (), run_id), config.cwd, config.step_timeout_s,
                secrets_of))
        return servers[dialect], config

    server.run_id = run_id  # type: ignore[attr-defined]
    with stack:
        yield server


@pytest.fixture
def migration_database(request: pytest.FixtureRequest, _migration_servers: Any) -> Any:
    """The URL of a fresh scratch database that the app's migrations have brought to head, dropped after the test.
    The database is ``sqlite`` unless the test is parametrized indirectly (``"postgresql"``, ``"mysql"``) or
    ``--migrations-db`` names one; the app is ``--migrations-app`` (or what ``migration-harness run`` would take)."""
    dialect = getattr(request, "param", None) or (request.config.getoption("migrations_db") or "sqlite").split(",")[0]
    sessions, config = _migration_servers(dialect)
    outcome = sessions.run({"checks": ["upgrade"]})  # on the dialect's scratch database, made fresh again
    upgrade = next((e for e in outcome.of_kind("check") if e["name"] == "upgrade"), None)
    if upgrade is None or upgrade["status"] != PASSED:
        reason = upgrade["message"] if upgrade else (outcome.of_kind("fatal") or [{}])[0].get("message", outcome.crash)
        pytest.fail(f"migration_database: the migrations did not reach head on {dialect}: {reason}", pytrace=False)
    yield sessions.url
