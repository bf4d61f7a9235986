"""squawk (https://squawkhq.com, the ``squawk-cli`` package ships its binary) on the offline PostgreSQL SQL.

Where a squawk rule is one of ours its findings carry our name (:data:`OUR_NAMES`); the others keep squawk's as
``squawk:<rule>``. Its style opinions (:data:`STYLE_RULES`) are off: they are about schema taste, not about what a
step does to a live database. A missing or broken squawk binary is a :class:`~harness.errors.ConfigError`, never a
silent skip of the PostgreSQL rules.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError
from .findings import WARNING, Rule

#: squawk rule → our rule of the same meaning
OUR_NAMES: dict[str, str] = {
    "require-concurrent-index-creation": "index-without-concurrently",
    "constraint-missing-not-valid": "constraint-without-not-valid",
    "adding-foreign-key-constraint": "constraint-without-not-valid",
    "ban-drop-column": "drop-column",
    "ban-drop-table": "drop-table",
    "renaming-column": "rename-column",
    "renaming-table": "rename-table",
    "changing-column-type": "change-column-type",
    "adding-required-field": "not-null-without-default",
    "adding-not-nullable-field": "set-not-null",
    "disallowed-unique-constraint": "unique-on-existing-table",
    "require-lock-timeout": "no-lock-timeout",
    "require-timeout-settings": "no-lock-timeout",  # its name before squawk split it in lock / statement timeouts
    "adding-field-with-default": "volatile-default",  # squawk flags only VOLATILE defaults (PostgreSQL 11+)
}

#: squawk's opinions on schema style, not on lock safety: excluded by default (``lint.rules.enable`` turns one on)
STYLE_RULES: tuple[str, ...] = (
    "prefer-bigint-over-int", "prefer-bigint-over-smallint", "prefer-big-int", "prefer-identity",
    "prefer-robust-stmts", "prefer-text-field", "prefer-timestamp-tz", "prefer-timestamptz", "ban-char-field",
    "require-enum-value-ordering", "require-statement-timeout", "unused-ignore",
)

#: squawk rules on by default that keep their own name (``squawk:<rule>``): the ones alembic output can trigger
SQUAWK_RULES: tuple[Rule, ...] = tuple(
    Rule(f"squawk:{name}", WARNING, ("postgresql",), "squawk", summary, why, safer)
    for name, summary, why, safer in (
        ("require-concurrent-index-deletion", "DROP INDEX without CONCURRENTLY",
         "A plain DROP INDEX takes an ACCESS EXCLUSIVE lock on the table: reads and writes wait.",
         "op.drop_index(..., postgresql_concurrently=True) inside op.get_context().autocommit_block()."),
        ("adding-serial-primary-key-field", "adds a serial primary key to an existing table",
         "Building the primary key's unique index blocks reads and writes of the table.",
         "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... PRIMARY KEY USING INDEX."),
        ("adding-primary-key-constraint", "adds a primary key to an existing table",
         "Building the primary key's unique index blocks reads and writes of the table.",
         "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... PRIMARY KEY USING INDEX."),
        ("ban-drop-not-null", "drops a NOT NULL constraint",
         "Clients that assume the column is always set may break on the new NULL values.",
         "Make sure every reader handles NULL before the migration."),
        ("identifier-too-long", "a name longer than PostgreSQL's 63 bytes",
         "PostgreSQL silently truncates it: a later migration that names the object in full (drop_constraint, "
         "drop_index) fails.", "Keep constraint and index names under 63 bytes (a naming convention)."),
        ("ban-drop-database", "drops a database", "Everything in it is gone.", "Never from a migration."),
        ("ban-concurrent-index-creation-in-transaction", "CREATE INDEX CONCURRENTLY inside a transaction",
         "PostgreSQL refuses CONCURRENTLY in a transaction block: the step fails.",
         "Wrap it in `with op.get_context().autocommit_block():`."),
        ("transaction-nesting", "BEGIN / COMMIT inside the migration's own transaction",
         "alembic already wraps the step in a transaction; a nested BEGIN or an early COMMIT leaves part of the "
         "step outside it.", "Use op.get_context().autocommit_block() for what must run outside a transaction."),
        ("ban-uncommitted-transaction", "a transaction is left open",
         "An open transaction holds its locks until the session ends.", "COMMIT every BEGIN."),
        ("ban-truncate-cascade", "TRUNCATE ... CASCADE",
         "It empties every table that references this one too, whatever the migration meant.",
         "TRUNCATE the tables you mean, by name."),
        ("ban-alter-domain-with-add-constraint", "adds a constraint to a domain",
         "PostgreSQL checks every column of the domain in every table, under locks.", "Avoid domain constraints."),
        ("ban-create-domain-with-constraint", "creates a domain with a constraint",
         "Later changes of the constraint lock every table that uses the domain.", "Use table CHECK constraints."),
    ))

SQUAWK_INSTALL = "pip install 'squawk-cli>=2.30' (it ships the squawk binary)"


@lru_cache(maxsize=1)
def squawk_binary() -> str:
    """The squawk executable: ``$SQUAWK`` / beside this Python (the venv's ``bin``) / on ``PATH``; or a
    :class:`ConfigError` saying how to install it."""
    candidates = [os.environ.get("SQUAWK"), str(Path(sys.executable).parent / "squawk"), shutil.which("squawk")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            try:
                subprocess.run([candidate, "--version"], capture_output=True, timeout=30, check=True)
            except (OSError, subprocess.SubprocessError) as exc:
                raise ConfigError(f"squawk at {candidate} does not run ({exc}); the PostgreSQL SQL rules need it: "
                                  f"{SQUAWK_INSTALL}") from exc
            return candidate
    raise ConfigError(f"squawk is not installed; the PostgreSQL SQL rules need it: {SQUAWK_INSTALL}, "
                      "or set SQUAWK to its path")


def run_squawk(sql: str, name: str = "migration.sql", exclude: tuple[str, ...] = STYLE_RULES) -> list[dict]:
    """squawk's JSON findings for ``sql`` (``line`` 0-based as squawk gives it), style rules excluded."""
    command = [squawk_binary(), "--reporter", "json", "--stdin-filepath", name]
    command += [f"--exclude={rule}" for rule in known_rules(tuple(exclude))]  # one flag each: squawk 2.0 to 2.70
    proc = subprocess.run(command, input=sql, capture_output=True, text=True, timeout=120)
    try:
        found = json.loads(proc.stdout or "[]")
    except ValueError as exc:
        raise ConfigError(f"squawk gave no JSON (exit code {proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()[:300]}") from exc
    if proc.returncode not in (0, 1) or not isinstance(found, list):
        raise ConfigError(f"squawk failed (exit code {proc.returncode}): {proc.stderr.strip()[:300]}")
    return found


@lru_cache(maxsize=8)
def known_rules(candidates: tuple[str, ...] = STYLE_RULES) -> tuple[str, ...]:
    """Those of ``candidates`` this squawk binary knows: squawk refuses an unknown name in ``--exclude``
    ("invalid rule name X"), and rule names change between its releases."""
    import re

    names = list(candidates)
    while names:
        proc = subprocess.run([squawk_binary(), "--reporter", "json", *(f"--exclude={n}" for n in names)],
                              input="SELECT 1;", capture_output=True, text=True, timeout=60)
        bad = re.search(r"invalid rule name ([\w:-]+)", proc.stderr)
        if not bad or bad.group(1) not in names:
            break
        names.remove(bad.group(1))
    return tuple(names)
