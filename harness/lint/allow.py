"""Acknowledging findings, and lint's pyproject settings.

Two ways to say "we know, and it is fine", each with a reason (shown in the report; an acknowledged finding never
fails the run):

* a marker comment anywhere in the migration file, for that revision::

      # migration-harness: allow drop-column — the column has been unused since 2.3
      # migration-harness: allow not-null-without-default@mysql - MariaDB's '' is what we want

  (an em dash, an en dash, ``-`` or ``:`` before the reason);
* ``[tool.migration-harness.lint]`` in pyproject.toml::

      allow = [{rule = "drop-column", revision = "abc123", database = "mysql", reason = "..."}]

``revision`` (an id or a prefix of one) and ``database`` are optional there; ``reason`` is required.
"""
from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..config import DIALECTS, read_pyproject
from ..errors import ConfigError
from .findings import SEVERITIES, Finding

_MARKER = re.compile(r"#\s*migration-harness\s*:\s*allow\b(?P<rest>.*)$", re.I)
_BODY = re.compile(r"^\s+(?P<rule>[A-Za-z0-9_-]+(?::[A-Za-z0-9_-]+)?)(?:@(?P<db>[A-Za-z]+))?"
                   r"(?:\s*(?:\u2014|\u2013|-|:)\s*(?P<reason>.*))?$")
#: fail_on when pyproject sets none: a warning fails the run (an error always does; info never)
DEFAULT_FAIL_ON = "error"


@dataclass(frozen=True)
class Allowance:
    """Acknowledges the findings of ``rule`` (in ``revision`` / on ``database`` when given) for ``reason``."""

    rule: str
    reason: str
    revision: str | None = None
    database: str | None = None
    #: where it was written: ``path:line`` of a marker, or ``pyproject.toml``
    origin: str = ""

    def matches(self, finding: Finding) -> bool:
        return (finding.rule == self.rule
                and (self.database is None or finding.database == self.database)
                and (self.revision is None or finding.revision == self.revision
                     or finding.revision.startswith(self.revision)))


@dataclass(frozen=True)
class LintSettings:
    """``[tool.migration-harness.lint]``: the severity that fails the run, rules off, squawk style rules on, and
    the allowances."""

    fail_on: str = DEFAULT_FAIL_ON
    disable: tuple[str, ...] = ()
    #: squawk style rules (off by default) to turn on, e.g. ``prefer-robust-stmts``
    enable: tuple[str, ...] = ()
    allow: tuple[Allowance, ...] = field(default_factory=tuple)

    def enabled(self, finding: Finding) -> bool:
        return finding.rule not in self.disable


def _check_rule(rule: str, where: str) -> None:
    """A rule name an allowance or setting may name: a catalogue rule, or any ``squawk:<rule>``."""
    from .catalogue import all_rules

    known = all_rules()
    if rule in known or rule.startswith("squawk:"):
        return
    close = difflib.get_close_matches(rule, list(known), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"{where}: unknown lint rule {rule!r}{hint}; --list-rules lists them")


def _check_database(database: str | None, where: str) -> None:
    if database is not None and database not in DIALECTS:
        raise ConfigError(f"{where}: unknown database {database!r}: choose from {', '.join(DIALECTS)}")


def revision_of(path: str | Path) -> str | None:
    """The ``revision = "..."`` a migration file assigns."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "revision" for t in targets) \
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    return None


def allowances_from_file(path: str | Path) -> list[Allowance]:
    """The ``# migration-harness: allow RULE[@DATABASE] — reason`` markers of one migration file, for its revision.

    A marker without a reason, with an unknown rule or database, is a :class:`ConfigError` naming ``file:line``.

    >>> allowances_from_file("migrations/versions/abc123_drop_legacy.py")  # doctest: +SKIP
    [Allowance(rule='drop-column', reason='unused since 2.3', revision='abc123', database=None, origin='...:12')]
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return []
    revision = revision_of(path)
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        marker = _MARKER.search(line)
        if not marker:
            continue
        where = f"{path}:{number}"
        body = _BODY.match(marker.group("rest"))
        if not body:
            raise ConfigError(f"{where}: cannot read the marker {marker.group(0).strip()!r}: write "
                              "`# migration-harness: allow RULE[@DATABASE] — reason`")
        reason = (body.group("reason") or "").strip()
        if not reason:
            raise ConfigError(f"{where}: the marker `allow {body.group('rule')}` gives no reason: write "
                              f"`# migration-harness: allow {body.group('rule')} — why it is safe here`")
        _check_rule(body.group("rule"), where)
        database = body.group("db").lower() if body.group("db") else None
        _check_database(database, where)
        found.append(Allowance(rule=body.group("rule"), reason=reason, revision=revision, database=database,
                               origin=where))
    return found


_ALLOW_KEYS = {"rule", "revision", "database", "reason"}
_LINT_KEYS = {"allow", "fail_on", "disable", "enable", "lock_budget", "estimate_rows", "sizes_from"}


def _allowance(entry: Any, where: str) -> Allowance:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: each allow entry is a table {{rule = ..., reason = ...}}, not {entry!r}")
    unknown = set(entry) - _ALLOW_KEYS
    if unknown:
        raise ConfigError(f"{where}: allow entry {entry}: unknown key(s) {', '.join(sorted(unknown))} (use "
                          f"{', '.join(sorted(_ALLOW_KEYS))})")
    if not entry.get("rule") or not isinstance(entry["rule"], str):
        raise ConfigError(f"{where}: allow entry {entry}: give the rule")
    if not str(entry.get("reason") or "").strip():
        raise ConfigError(f"{where}: allow entry {entry}: give a reason (it is shown in the report)")
    _check_rule(entry["rule"], where)
    _check_database(entry.get("database"), where)
    return Allowance(rule=entry["rule"], reason=str(entry["reason"]).strip(), revision=entry.get("revision"),
                     database=entry.get("database"), origin="pyproject.toml")


def _lint_table(cwd: str | Path) -> dict[str, Any]:
    table = read_pyproject(str(cwd)).get("lint", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{Path(cwd) / 'pyproject.toml'}: [tool.migration-harness.lint] must be a table")
    return table


def allowances_from_pyproject(cwd: str | Path) -> list[Allowance]:
    """The ``allow`` entries of ``[tool.migration-harness.lint]`` in ``cwd``'s pyproject.toml (none without one)."""
    where = "pyproject.toml [tool.migration-harness.lint]"
    entries = _lint_table(cwd).get("allow", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: allow must be a list of tables")
    return [_allowance(entry, where) for entry in entries]


def _names(value: Any, key: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of rule names")
    return tuple(value)


def lint_settings(cwd: str | Path) -> LintSettings:
    """``[tool.migration-harness.lint]`` of ``cwd``'s pyproject.toml: ``fail_on`` (``info`` / ``warning`` /
    ``error``, default ``warning``), ``disable`` (rules never reported), ``enable`` (squawk style rules to turn
    on), ``allow``. An unknown key, severity or rule name is a :class:`ConfigError`."""
    from .squawk import STYLE_RULES

    where = "pyproject.toml [tool.migration-harness.lint]"
    table = _lint_table(cwd)
    unknown = set(table) - _LINT_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (use "
                          f"{', '.join(sorted(_LINT_KEYS))})")
    fail_on = table.get("fail_on", DEFAULT_FAIL_ON)
    if fail_on not in SEVERITIES:
        raise ConfigError(f"{where}: fail_on = {fail_on!r}: choose from {', '.join(SEVERITIES)}")
    disable = _names(table.get("disable", []), "disable", where)
    for rule in disable:
        _check_rule(rule, where)
    enable = tuple(r.removeprefix("squawk:") for r in _names(table.get("enable", []), "enable", where))
    for rule in enable:
        if rule not in STYLE_RULES:
            raise ConfigError(f"{where}: enable = [{rule!r}]: only squawk's style rules are off by default "
                              f"({', '.join(STYLE_RULES)})")
    return LintSettings(fail_on=fail_on, disable=disable, enable=enable,
                        allow=tuple(allowances_from_pyproject(cwd)))


def apply_allowances(findings: Iterable[Finding], allowances: Sequence[Allowance]) -> list[Finding]:
    """``findings`` with ``allowed`` set to the reason of the first allowance that matches each (rule, and the
    revision / database it names); the others unchanged. Nothing is dropped."""
    out = []
    for finding in findings:
        match = None if finding.allowed else next((a for a in allowances if a.matches(finding)), None)
        out.append(finding.acknowledged(match.reason) if match else finding)
    return out
