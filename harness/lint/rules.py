"""Rules on the offline SQL of one revision: ours for MySQL / MariaDB and SQLite (no tool has them), squawk for
PostgreSQL plus the PostgreSQL rules squawk lacks.

Operations on a table the same revision creates are never findings (the table is empty and nobody uses it yet),
for our rules and squawk's alike. :func:`sql_findings` is the entry point.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

from .findings import INFO, Finding, Rule
from .source_rules import find_call, keyword, locate
from .sql_rules import SQL_RULES
from .sqltext import NAME, Statement, alter_action, created_tables, split_statements, table_of, unquote
from .squawk import OUR_NAMES, SQUAWK_RULES, STYLE_RULES, run_squawk

RULES: dict[str, Rule] = {r.name: r for r in SQL_RULES + SQUAWK_RULES}

#: alembic operations that render each kind of statement (to find the line in the migration file)
OPERATIONS: dict[str, tuple[str, ...]] = {
    "drop-table": ("drop_table",),
    "drop-column": ("drop_column",),
    "rename-column": ("alter_column",),
    "rename-table": ("rename_table",),
    "change-column-type": ("alter_column",),
    "set-not-null": ("alter_column",),
    "not-null-without-default": ("add_column",),
    "volatile-default": ("add_column",),
    "unique-on-existing-table": ("create_unique_constraint", "create_index"),
    "constraint-without-not-valid": ("create_foreign_key", "create_check_constraint"),
    "index-without-concurrently": ("create_index",),
    "alter-type-add-value": ("execute",),
    "batch-recreate": ("batch_alter_table",),
    "offline-sql-parameters": ("execute",),
}

def operations_for(rule: str, statement: Statement | None) -> tuple[str, ...]:
    """The alembic operations that may have rendered ``statement`` for a finding of ``rule``."""
    upper = statement.upper if statement else ""
    if "FOREIGN KEY" in upper:
        return ("create_foreign_key",)
    if " CHECK " in f" {upper.replace('(', ' (')} " and rule == "constraint-without-not-valid":
        return ("create_check_constraint",)
    if upper.startswith("CREATE") and " INDEX " in upper:
        return ("create_index",)
    if rule == "unique-on-existing-table":
        return ("create_unique_constraint",)
    return OPERATIONS.get(rule, ())


_ADD_COLUMN = re.compile(rf"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?{NAME}\s+(.*)$", re.I)
_DROP_COLUMN = re.compile(rf"^DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?{NAME}\s*(?:CASCADE|RESTRICT)?$", re.I)
_RENAME_COLUMN = re.compile(rf"^RENAME\s+(?:COLUMN\s+)?{NAME}\s+TO\s+{NAME}$", re.I)
_RENAME_TO = re.compile(rf"^RENAME\s+(?:TO\s+|AS\s+)?{NAME}$", re.I)
_CHANGE = re.compile(rf"^CHANGE\s+(?:COLUMN\s+)?{NAME}\s+{NAME}\s+(.*)$", re.I)
_MODIFY = re.compile(rf"^MODIFY\s+(?:COLUMN\s+)?{NAME}\s+(.*)$", re.I)
_ADD_CONSTRAINT = re.compile(rf"^ADD\s+(?:CONSTRAINT\s+{NAME}\s+)?(UNIQUE|FOREIGN\s+KEY|CHECK)\b", re.I)
_ALTER_TYPE_ADD_VALUE = re.compile(rf"^ALTER\s+TYPE\s+{NAME}\s+ADD\s+VALUE\b", re.I)
_UNIQUE_INDEX = re.compile(r"^CREATE\s+UNIQUE\s+INDEX\b", re.I)
_TMP = "_alembic_tmp_"


def _finding(rule: str, dialect: str, revision: str, file: str | None, statement: Statement | None,
             message: str, table: str | None, names: Sequence[str | None] = (), source: str = "sql",
             severity: str | None = None, details: dict | None = None) -> Finding:
    line = locate(file, operations_for(rule, statement), [table, *names]) if file else None
    return Finding(rule=rule, severity=severity or RULES[rule].severity, database=dialect, revision=revision,
                   message=message, source=source, file=file, line=line, table=table,
                   statement=statement.short() if statement else None, details=dict(details or {}))


def _column_definition_findings(add: str, dialect: str) -> list[tuple[str, str]]:
    """(rule, reason) for an ADD COLUMN definition on an existing table."""
    match = _ADD_COLUMN.match(add)
    if not match:
        return []
    column, definition = unquote(match.group(1)), match.group(2).upper()
    if " NOT NULL" in f" {definition}" and not re.search(r"\bDEFAULT\b", definition) \
            and "AUTO_INCREMENT" not in definition and "GENERATED" not in definition:
        fill = {"mysql": "; MySQL / MariaDB accept it and silently fill existing rows with the type's implicit "
                         "default (0, '')",
                "sqlite": "; SQLite refuses it (\"Cannot add a NOT NULL column with default value NULL\")",
                "postgresql": "; PostgreSQL refuses it when the table has rows"}[dialect]
        return [("not-null-without-default", f"adds NOT NULL column {column} without a DEFAULT{fill}")]
    return []


def _our_findings(dialect: str, revision: str, statements: list[Statement], file: str | None) -> list[Finding]:
    """Our rules on ``statements`` (MySQL / SQLite: all of them; PostgreSQL: only those squawk lacks)."""
    created = created_tables(statements)
    recreated = {unquote(m.group(1))[len(_TMP):] for s in statements
                 for m in [re.match(rf"^CREATE\s+TABLE\s+{NAME}", s.text, re.I)]
                 if m and unquote(m.group(1)).startswith(_TMP)}
    out: list[Finding] = []

    def add(rule: str, statement: Statement, message: str, table: str | None, *names: str | None,
            severity: str | None = None) -> None:
        out.append(_finding(rule, dialect, revision, file, statement, message, table, names, severity=severity))

    for statement in statements:
        text = statement.text
        type_match = _ALTER_TYPE_ADD_VALUE.match(text)
        if dialect == "postgresql":
            if type_match:
                add("alter-type-add-value", statement, f"ALTER TYPE {unquote(type_match.group(1))} ADD VALUE: not "
                    "in a transaction block before PostgreSQL 12, and the value is unusable in the same transaction",
                    None, unquote(type_match.group(1)))
            continue
        table = table_of(statement)
        if table is None or table.startswith(_TMP):
            continue
        if table in created:
            continue  # a table of this revision: empty, and no client uses it yet
        upper = statement.upper
        if upper.startswith("DROP TABLE"):
            if table not in recreated:
                add("drop-table", statement, f"drops table {table}", table)
            continue
        if upper.startswith("RENAME TABLE"):
            add("rename-table", statement, f"renames table {table}", table)
            continue
        if _UNIQUE_INDEX.match(text):
            add("unique-on-existing-table", statement, f"creates a unique index on existing table {table}", table)
            continue
        action = alter_action(statement)
        if action is None:
            continue
        rest = action[1]
        for rule, reason in _column_definition_findings(rest, dialect):
            column = unquote(_ADD_COLUMN.match(rest).group(1))  # type: ignore[union-attr]
            add(rule, statement, f"{table}: {reason}", table, column)
        if m := _DROP_COLUMN.match(rest):
            add("drop-column", statement, f"drops column {table}.{unquote(m.group(1))}", table, unquote(m.group(1)))
        elif m := _RENAME_COLUMN.match(rest):
            add("rename-column", statement, f"renames column {table}.{unquote(m.group(1))} to "
                f"{unquote(m.group(2))}", table, unquote(m.group(1)))
        elif m := _RENAME_TO.match(rest):
            add("rename-table", statement, f"renames table {table} to {unquote(m.group(1))}", table)
        elif m := _CHANGE.match(rest):
            old, new = unquote(m.group(1)), unquote(m.group(2))
            if old != new:
                add("rename-column", statement, f"renames column {table}.{old} to {new} (CHANGE)", table, old)
            _modify(add, statement, file, table, old, new, m.group(3))
        elif m := _MODIFY.match(rest):
            _modify(add, statement, file, table, unquote(m.group(1)), unquote(m.group(1)), m.group(2))
        elif m := _ADD_CONSTRAINT.match(rest):
            kind = " ".join(m.group(2).upper().split())
            if kind == "UNIQUE":
                add("unique-on-existing-table", statement, f"adds UNIQUE constraint {m.group(1) or ''} to "
                    f"existing table {table}".replace("  ", " "), table)
            elif dialect == "mysql":
                add("constraint-without-not-valid", statement, f"adds {kind} constraint {m.group(1) or ''} to "
                    f"existing table {table}: MySQL / MariaDB have no NOT VALID and check every row at "
                    "once".replace("  ", " "), table)
    for table in sorted(recreated - created):
        first = next(s for s in statements if s.text.upper().startswith(f"CREATE TABLE {_TMP.upper()}{table.upper()}")
                     or unquote(table_of(s) or "") == f"{_TMP}{table}")
        add("batch-recreate", first, f"batch mode recreates table {table} (copy, drop, rename)", table,
            severity=INFO)
    return out


def _modify(add: Callable[..., None], statement: Statement, file: str | None, table: str, old: str, new: str,
            definition: str) -> None:
    """MySQL ``MODIFY`` / ``CHANGE`` restate the whole column: a type change, or only a nullability / default
    change. The ``alter_column`` call in the migration file tells which (``type_=``, ``nullable=False``)."""
    call = find_call(file, ("alter_column",), [table, old]) or find_call(file, ("alter_column",), [table, new])
    if call is None:
        add("change-column-type", statement, f"redefines column {table}.{new} as {definition} (a type change, or a "
            "nullability / default change: the SQL alone cannot tell)", table, old)
        return
    if keyword(call, "type_") is not None:
        add("change-column-type", statement, f"changes the type of column {table}.{new} ({definition})", table, old)
    nullable = keyword(call, "nullable")
    if nullable is not None and getattr(nullable, "value", None) is False:
        add("set-not-null", statement, f"makes column {table}.{new} NOT NULL", table, old)


def _squawk_findings(revision: str, sql: str, statements: list[Statement], file: str | None,
                     enable: Sequence[str] = ()) -> list[Finding]:
    """squawk on the revision's SQL, under our names where it has one, minus what touches the revision's own new
    tables."""
    created = created_tables(statements)
    out: list[Finding] = []
    exclude = tuple(r for r in STYLE_RULES if r not in enable)
    for item in run_squawk(sql, name=f"{revision}.sql", exclude=exclude):
        squawk_rule = item.get("rule_name") or "unknown"
        line = int(item.get("line", 0)) + 1  # squawk counts lines from 0
        statement = next((s for s in statements if s.first_line <= line <= s.last_line), None)
        table = table_of(statement) if statement else None
        ours = OUR_NAMES.get(squawk_rule)
        if table in created and ours == "no-lock-timeout":
            # squawk names the first slow statement only: the revision may still lock an existing table later
            statement = next((s for s in statements if s.first_line > line and _locks_existing(s, created)), None)
            table = table_of(statement) if statement else None
            if statement is None:
                continue
        elif table in created:
            continue
        if squawk_rule == "constraint-missing-not-valid" and statement is not None \
                and not re.search(r"\b(FOREIGN\s+KEY|CHECK)\b", statement.upper):
            continue  # squawk says it of UNIQUE too, which has no NOT VALID: unique-on-existing-table is the finding
        name = ours or f"squawk:{squawk_rule}"
        rule = RULES.get(name)
        text = " ".join(str(item.get("message", "")).split())
        help_text = " ".join(str(item.get("help") or "").split())
        if ours and rule:
            message = rule.summary + (f": {statement.short(160)}" if statement else "")
        else:
            message = text + (f" {help_text}" if help_text else "")
        severity = rule.severity if rule else ("error" if str(item.get("level")).lower() == "error" else "warning")
        names: list[str | None] = []
        if statement is not None and ours in ("drop-column", "not-null-without-default", "volatile-default",
                                              "rename-column", "change-column-type", "set-not-null"):
            words = statement.text.split()
            names = [unquote(words[i + 1]) for i, w in enumerate(words[:-1]) if w.upper() in ("COLUMN", "RENAME")
                     and words[i + 1].upper() != "TO"][:1]
        out.append(_finding(name, "postgresql", revision, file, statement, message, table, names, source="squawk",
                            severity=severity, details={"squawk_rule": squawk_rule, "squawk_message": text,
                                                        "squawk_help": help_text}))
    return out


def _locks_existing(statement: Statement, created: set[str]) -> bool:
    """An ALTER TABLE / CREATE INDEX / DROP on a table the revision did not create."""
    table = table_of(statement)
    return bool(table) and table not in created and bool(re.match(r"^(ALTER|CREATE|DROP)\b", statement.text, re.I))


#: a bound parameter (outside string literals) as alembic renders it without literal_binds: pyformat (psycopg2),
#: format (PyMySQL), qmark (sqlite3)
_OUTSIDE_QUOTES = r"(?=(?:[^']*'[^']*')*[^']*$)"
_PYFORMAT = re.compile(r"%(?:\([A-Za-z_][A-Za-z0-9_]*\))?s" + _OUTSIDE_QUOTES)
_QMARK = re.compile(r"\?" + _OUTSIDE_QUOTES)


def _parameter_findings(dialect: str, revision: str, statements: list[Statement], file: str | None) -> list[Finding]:
    """Statements that hold placeholders instead of values: the offline script cannot be run as it is."""
    out = []
    for statement in statements:
        found = _PYFORMAT.findall(statement.text) or (_QMARK.findall(statement.text) if dialect == "sqlite" else [])
        if found:
            message = (f"the offline SQL holds bound parameters ({', '.join(dict.fromkeys(found))}) instead of values, "
                       f"so the script stops here: {statement.short(160)}")
            out.append(_finding("offline-sql-parameters", dialect, revision, file, statement, message,
                                table_of(statement), [], source="offline"))
    return out


def sql_findings(dialect: str, revision: str, sql: str, file: str | None,
                 enable: Sequence[str] = ()) -> list[Finding]:
    """Every SQL-rule finding of one revision's offline SQL on ``dialect``, deduplicated (one finding per rule,
    table and statement: squawk reports a FK both as ``adding-foreign-key-constraint`` and
    ``constraint-missing-not-valid``). ``enable``: squawk style rules to turn on (``LintSettings.enable``).

    >>> sql_findings("mysql", "a003", "ALTER TABLE posts DROP COLUMN title;\\n", None)[0].rule
    'drop-column'
    """
    statements = split_statements(sql)
    found = _our_findings(dialect, revision, statements, file) + _parameter_findings(dialect, revision, statements,
                                                                                      file)
    if dialect == "postgresql":  # squawk parses real PostgreSQL: a placeholder would be its syntax error
        found += _squawk_findings(revision, _PYFORMAT.sub("NULL", sql), statements, file, enable)
    unique: dict[tuple, Finding] = {}
    for finding in found:
        unique.setdefault((finding.rule, finding.table, finding.statement), finding)
    return list(unique.values())
