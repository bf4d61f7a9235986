"""alembic's offline SQL cut into statements, each with its lines and what it does to which table.

alembic renders every statement on its own lines, terminated by ``;`` at the end of its last line, with
``-- Running upgrade`` comments between them: a tokenizer is not needed, and regular expressions over one
statement at a time classify what the rules look at.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$]*)'
_NAME = rf"(?:{_IDENT}\.)?({_IDENT})"  # an optionally schema-qualified name; the group is the last part


def unquote(name: str) -> str:
    """``"Users"`` / ``` `users` ``` / ``[users]`` → the bare name (case kept; unquoted names lower-cased)."""
    if name[:1] in ('"', "`", "["):
        return name[1:-1]
    return name.lower()


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a revision's offline SQL: its text on one line and its 1-based line range."""

    text: str
    first_line: int
    last_line: int

    @property
    def upper(self) -> str:
        return self.text.upper()

    def short(self, limit: int = 200) -> str:
        return self.text if len(self.text) <= limit else self.text[:limit - 3] + "..."


def split_statements(sql: str) -> list[Statement]:
    """The statements of ``sql`` (comments and blank lines dropped), each whitespace-normalised.

    >>> [s.text for s in split_statements("BEGIN;\\n-- x\\nALTER TABLE t\\n  DROP COLUMN c;\\n")]
    ['BEGIN', 'ALTER TABLE t DROP COLUMN c']
    """
    statements: list[Statement] = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(sql.splitlines(), start=1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("--")):
            continue
        if not pending:
            start = number
        pending.append(stripped)
        if stripped.endswith(";"):
            text = " ".join(" ".join(pending).split()).rstrip(";").strip()
            if text:
                statements.append(Statement(text, start, number))
            pending = []
    if pending:
        text = " ".join(" ".join(pending).split()).rstrip(";").strip()
        if text:
            statements.append(Statement(text, start, start + len(pending) - 1))
    return statements


_CREATE_TABLE = re.compile(rf"^CREATE\s+(?:TEMPORARY\s+|TEMP\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}", re.I)
_ALTER_TABLE = re.compile(rf"^ALTER\s+TABLE\s+(?:ONLY\s+)?(?:IF\s+EXISTS\s+)?{_NAME}\s+(.*)$", re.I)
_ON_TABLE = re.compile(rf"\bON\s+(?:ONLY\s+)?{_NAME}\s*\(", re.I)
_DROP_TABLE = re.compile(rf"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_NAME}", re.I)
_RENAME_TABLE = re.compile(rf"^RENAME\s+TABLE\s+{_NAME}\s+TO\s+{_NAME}", re.I)
_INSERT = re.compile(rf"^INSERT\s+INTO\s+{_NAME}", re.I)


def table_of(statement: Statement) -> str | None:
    """The table a DDL statement works on (CREATE / ALTER / DROP TABLE, CREATE INDEX ... ON, INSERT INTO)."""
    for pattern in (_CREATE_TABLE, _ALTER_TABLE, _DROP_TABLE, _RENAME_TABLE, _INSERT):
        match = pattern.match(statement.text)
        if match:
            return unquote(match.group(1))
    if statement.upper.startswith("CREATE") and " INDEX " in f" {statement.upper} ":
        match = _ON_TABLE.search(statement.text)
        if match:
            return unquote(match.group(1))
    return None


def alter_action(statement: Statement) -> tuple[str, str] | None:
    """``(table, what follows ALTER TABLE <table>)`` for an ALTER TABLE statement."""
    match = _ALTER_TABLE.match(statement.text)
    return (unquote(match.group(1)), match.group(2)) if match else None


def created_tables(statements: list[Statement]) -> set[str]:
    """Tables the revision itself creates (before batch-mode temporary copies are renamed: ``_alembic_tmp_x``
    counts as ``x`` being recreated, not created)."""
    created = set()
    for statement in statements:
        match = _CREATE_TABLE.match(statement.text)
        if match and not unquote(match.group(1)).startswith("_alembic_tmp_"):
            created.add(unquote(match.group(1)))
    return created


def statement_at(statements: list[Statement], line: int) -> Statement | None:
    """The statement that covers 1-based ``line``."""
    return next((s for s in statements if s.first_line <= line <= s.last_line), None)


IDENT, NAME = _IDENT, _NAME
