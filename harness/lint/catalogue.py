"""Every lint rule in one place: what ``--list-rules`` lists and ``--explain RULE`` prints."""
from __future__ import annotations

import difflib
import textwrap

from ..errors import ConfigError
from .findings import Rule
from .estimates import ESTIMATE_RULES
from .observed import OBSERVED_RULES
from .source_rules import SOURCE_RULES
from .sql_rules import SQL_RULES
from .squawk import OUR_NAMES, STYLE_RULES, SQUAWK_RULES

#: how ``--list-rules`` titles each source, in its order
SOURCES: dict[str, str] = {
    "observed": "Observed (each step run on a scratch database with rows)",
    "sql": "On the offline SQL (the harness's own rules)",
    "squawk": "On the offline PostgreSQL SQL, by squawk",
    "source": "On the migration file",
    "offline": "Offline SQL generation",
}
DIALECT_ORDER = ("postgresql", "mysql", "sqlite")


def all_rules() -> dict[str, Rule]:
    """Every rule by name: the observed ones, the SQL rules (ours and squawk's), the source rules."""
    rules: dict[str, Rule] = {}
    for rule in (*OBSERVED_RULES, *ESTIMATE_RULES, *SQL_RULES, *SQUAWK_RULES, *SOURCE_RULES):
        rules.setdefault(rule.name, rule)
    return rules


def squawk_rules_for(name: str) -> list[str]:
    """The squawk rules whose findings carry our rule ``name``."""
    return sorted(squawk for squawk, ours in OUR_NAMES.items() if ours == name)


def _wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


def explain(name: str) -> str:
    """The text of ``--explain RULE``: severity, databases, source, what it finds, why it matters, what to do
    instead. An unknown name is a :class:`ConfigError` that lists the closest names.

    >>> print(explain("drop-column").splitlines()[0])
    drop-column (warning; postgresql, mysql, sqlite; sql)
    """
    rules = all_rules()
    rule = rules.get(name) or rules.get(f"squawk:{name}")
    if rule is None:
        if name in STYLE_RULES or name.removeprefix("squawk:") in STYLE_RULES:
            raise ConfigError(f"{name} is one of squawk's style rules, off by default: it is about schema taste, "
                              "not what a step does to a live database (lint's `rules.enable` turns it on)")
        close = difflib.get_close_matches(name, list(rules), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown lint rule {name!r}{hint} (--list-rules lists them all)")
    dialects = ", ".join(d for d in DIALECT_ORDER if d in rule.dialects)
    lines = [f"{rule.name} ({rule.severity}; {dialects}; {rule.source})", _wrap(rule.summary, ""), "",
             "Why it matters:", _wrap(rule.why), "", "Safer:", _wrap(rule.safer)]
    squawk = squawk_rules_for(rule.name)
    if squawk:
        lines += ["", f"On PostgreSQL found by squawk's {', '.join(squawk)}."]
    if rule.source != "observed":
        lines += ["", f"Acknowledge one with a comment in the migration: "
                      f"# migration-harness: allow {rule.name} — <reason>"]
    return "\n".join(lines)


def list_rules() -> str:
    """The text of ``--list-rules``: the rules grouped by source, then by database, with severity and summary;
    which of ours squawk finds on PostgreSQL, and squawk's style rules that are off."""
    rules = all_rules()
    out: list[str] = []
    for source, title in SOURCES.items():
        group = [r for r in rules.values() if r.source == source]
        if not group:
            continue
        out += [title, "-" * len(title)]
        for dialect_set in sorted({r.dialects for r in group}, key=lambda d: (-len(d), d)):
            label = ", ".join(d for d in DIALECT_ORDER if d in dialect_set)
            out.append(f"  [{label}]")
            for rule in sorted((r for r in group if r.dialects == dialect_set), key=lambda r: r.name):
                squawk = squawk_rules_for(rule.name)
                via = f" (PostgreSQL: squawk {', '.join(squawk)})" if squawk else ""
                out.append(f"    {rule.name:<30} {rule.severity:<8} {rule.summary}{via}")
        out.append("")
    out += ["squawk style rules, off by default (schema taste, not lock safety):",
            _wrap(", ".join(STYLE_RULES), "  "), "",
            "Other squawk rules keep their own name (squawk:<rule>). `--explain RULE` tells why a rule matters "
            "and what to do instead."]
    return "\n".join(out)
