"""Errors the harness raises on purpose.

Each carries the data a caller needs and a message that says how to fix the cause. The CLI maps them to the
documented exit codes: :class:`ConfigError` → 2, :class:`DatabaseUnavailable` → 3.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


class HarnessError(Exception):
    """Base of every error the harness raises deliberately."""

    exit_code: int = EXIT_CONFIG

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(HarnessError):
    """The user's input (options, app, migrations directory) cannot be used; nothing was started."""

    exit_code = EXIT_CONFIG


class AppLoadError(ConfigError):
    """The Flask app could not be imported or created, or it is not wired for Flask-Migrate."""


class MigrationsError(ConfigError):
    """The migrations directory is missing, not a Flask-Migrate one, or its revision graph is broken."""


class WrongDatabaseError(ConfigError):
    """The app's engine does not point at the scratch database the harness gave it."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(
            f"the app's engine points at {actual}, not at the scratch database {expected}; "
            "make the app (or its factory) read DATABASE_URL / SQLALCHEMY_DATABASE_URI, "
            "or point --app at a small factory that does"
        )
        self.expected = expected
        self.actual = actual


class DatabaseUnavailable(HarnessError):
    """A selected database could not be provided (no Docker engine, missing image, unreachable URL…)."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, dialect: str, reason: str) -> None:
        super().__init__(f"{dialect}: {reason}")
        self.dialect = dialect
        self.reason = reason
