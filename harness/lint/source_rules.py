"""Rules on the migration file itself (its Python AST), for every dialect, and finding the line of an ``op.*`` call
that a SQL finding is about (GitHub annotations point at that line of the pull request)."""
from __future__ import annotations

import ast
from functools import lru_cache
from typing import Sequence

from .findings import INFO, WARNING, Finding, Rule

ALL_DIALECTS: tuple[str, ...] = ("sqlite", "postgresql", "mysql")

SOURCE_RULES: tuple[Rule, ...] = (
    Rule("no-downgrade", INFO, ALL_DIALECTS, "source",
         "the revision has no working downgrade (none, or only pass / a docstring / ... / raise NotImplementedError)",
         "Without a downgrade, a release that must be rolled back cannot take its schema change back with "
         "`flask db downgrade`; the fix has to be written under pressure, by hand.",
         "Write the inverse operations (autogenerate writes most of them); where a step cannot be undone (a "
         "dropped column's data), say so in the downgrade and acknowledge this finding with a reason."),
    Rule("empty-upgrade", WARNING, ALL_DIALECTS, "source",
         "the revision's upgrade does nothing (pass, a docstring or ... only)",
         "An empty revision is usually `flask db migrate` run when autogenerate saw no difference (or saw the "
         "wrong database): the change it was meant to hold is missing.",
         "Delete the revision, or write the operations it was meant to hold; a deliberate empty revision (a "
         "merge point) can be acknowledged with a reason."),
)


@lru_cache(maxsize=256)
def _parse(file: str) -> ast.Module | None:
    try:
        with open(file, encoding="utf-8") as handle:
            return ast.parse(handle.read(), filename=file)
    except (OSError, SyntaxError, ValueError):
        return None


def _function(tree: ast.Module | None, name: str) -> ast.FunctionDef | None:
    if tree is None:
        return None
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def _does_nothing(function: ast.FunctionDef, raising_counts: bool) -> bool:
    """Only ``pass``, docstrings, ``...`` (and, when ``raising_counts``, ``raise NotImplementedError``)."""
    for statement in function.body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring, a bare string, or ...
        if raising_counts and isinstance(statement, ast.Raise) and statement.exc is not None:
            exc = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                continue
        return False
    return True


def upgrade_line(file: str | None) -> int | None:
    """The line of ``def upgrade`` in ``file``."""
    function = _function(_parse(file), "upgrade") if file else None
    return function.lineno if function else None


def _strings(node: ast.AST) -> set[str]:
    return {n.value.lower() for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _calls(function: ast.FunctionDef) -> list[tuple[ast.Call, set[str]]]:
    """Every call in ``function`` with the strings of its arguments, plus those of the enclosing
    ``with op.batch_alter_table("table") as batch_op`` (where the table name is)."""
    found: list[tuple[ast.Call, set[str]]] = []

    def visit(node: ast.AST, inherited: set[str]) -> None:
        if isinstance(node, ast.With):
            extra = set(inherited)
            for item in node.items:
                extra |= _strings(item.context_expr)
                visit(item.context_expr, inherited)
            for child in node.body:
                visit(child, extra)
            return
        if isinstance(node, ast.Call):
            found.append((node, _strings(node) | inherited))
        for child in ast.iter_child_nodes(node):
            visit(child, inherited)

    for statement in function.body:
        visit(statement, set())
    return found


def call_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _positional(call: ast.Call, inherited: set[str]) -> set[str]:
    """The strings of ``call``'s positional arguments (table, column), plus the batch table."""
    found = set(inherited)
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.add(arg.value.lower())
    return found


def find_call(file: str | None, operations: Sequence[str], names: Sequence[str | None]) -> ast.Call | None:
    """The call in ``upgrade()`` named one of ``operations`` (``drop_column``...) whose arguments mention every
    one of ``names`` (table, column; case-insensitive): positional arguments first (``alter_column("users",
    "name")`` is about column ``name`` even when another call renames something to it), then any argument; else
    an ``op.execute`` whose SQL text mentions them."""
    function = _function(_parse(file), "upgrade") if file else None
    if function is None:
        return None
    wanted = [n.lower() for n in names if n]
    calls = _calls(function)
    named = [(call, strings) for call, strings in calls if call_name(call) in operations]
    for call, strings in named:
        with_table = strings - _strings(call)
        if all(w in _positional(call, with_table) for w in wanted):
            return call
    for call, strings in named:
        if all(w in strings for w in wanted):
            return call
    for call, strings in calls:
        if call_name(call) == "execute" and all(any(w in s for s in strings) for w in wanted):
            return call
    return None


def locate(file: str | None, operations: Sequence[str], names: Sequence[str | None]) -> int | None:
    """The line of the call :func:`find_call` finds for all ``names`` (table first), else for the table alone,
    else the line of ``def upgrade``, else None."""
    call = find_call(file, operations, names)
    if call is None and len([n for n in names if n]) > 1:
        call = find_call(file, operations, [n for n in names if n][:1])
    return call.lineno if call is not None else upgrade_line(file)


def keyword(call: ast.Call | None, name: str) -> ast.expr | None:
    """The value of keyword argument ``name`` of ``call``."""
    if call is None:
        return None
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_merge(tree: ast.Module) -> bool:
    """Whether the file's ``down_revision`` names several parents (a merge revision, empty by nature)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "down_revision"
                                                 for t in node.targets):
            return isinstance(node.value, (ast.Tuple, ast.List)) and len(node.value.elts) > 1
    return False


def source_findings(revision: str, file: str, dialects: Sequence[str]) -> list[Finding]:
    """``no-downgrade`` and ``empty-upgrade`` for the migration ``file`` of ``revision``, one per dialect. A merge
    revision (``flask db merge``) is empty both ways by nature: never a finding.

    >>> source_findings("a001", "migrations/versions/a001_x.py", ["sqlite"])  # doctest: +SKIP
    [Finding(rule='no-downgrade', severity='info', database='sqlite', revision='a001', ...)]
    """
    tree = _parse(file)
    if tree is None or is_merge(tree):
        return []
    found: list[tuple[Rule, int, str]] = []
    rules = {r.name: r for r in SOURCE_RULES}
    downgrade = _function(tree, "downgrade")
    if downgrade is None:
        found.append((rules["no-downgrade"], upgrade_line(file) or 1, f"{revision} has no downgrade() function"))
    elif _does_nothing(downgrade, raising_counts=True):
        found.append((rules["no-downgrade"], downgrade.lineno, f"{revision}'s downgrade() does nothing"))
    upgrade = _function(tree, "upgrade")
    if upgrade is not None and _does_nothing(upgrade, raising_counts=False):
        found.append((rules["empty-upgrade"], upgrade.lineno, f"{revision}'s upgrade() does nothing"))
    return [Finding(rule=rule.name, severity=rule.severity, database=dialect, revision=revision, message=message,
                    source="source", file=file, line=line)
            for dialect in dialects for rule, line, message in found]
