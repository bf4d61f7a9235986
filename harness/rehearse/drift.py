"""Drift: where production's schema differs from what its own migrations build at its revision.

Someone altered production by hand, or a migration was edited after it ran there: either way the pending
migrations were written against a schema production does not have. The comparison is the one
``schema_matches_models`` makes (:class:`~harness.schema.compare.ModelComparison`: alembic's autogenerate with
the dialect backend's quirks, plus primary keys, foreign-key actions, CHECK names and enum labels), with the
MetaData reflected from production in the place of the models, and the scratch database the migrations built as
the database. Both sides are the same dialect, so every difference is real, and each names table, object and
aspect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from ..backends.base import Backend
from ..schema.compare import ModelComparison
from .copy import copyable_metadata
from ..schema.differences import Difference, _plain, _show, _show_nullable, subject_text


@dataclass(frozen=True)
class DriftFinding:
    """One way production differs from its migrations: ``production`` and ``migrations`` are each side's value."""

    object: str
    table: str | None
    name: str | None
    aspect: str
    production: Any = None
    migrations: Any = None
    detail: str = ""

    @property
    def text(self) -> str:
        if self.object == "revision":
            return f"revision {self.name} in production is not in the migrations history"
        subject = subject_text(self.object, self.table, self.name, self.detail)
        if self.aspect == "missing":
            return f"{subject}: in production but not in what the migrations build"
        if self.aspect == "extra":
            return f"{subject}: built by the migrations but not in production"
        show = _show_nullable if self.aspect == "nullable" else _show
        return (f"{subject}: {self.aspect.replace('_', ' ')} differs: production {show(self.production)}, "
                f"migrations {show(self.migrations)}")

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "table": self.table, "name": self.name, "aspect": self.aspect,
                "production": _plain(self.production), "migrations": _plain(self.migrations), "text": self.text}

    @classmethod
    def from_difference(cls, difference: Difference) -> DriftFinding:
        return cls(difference.object, difference.table, difference.name, difference.aspect, difference.model,
                   difference.database, difference.detail)


class ProductionComparison(ModelComparison):
    """:class:`ModelComparison` with production's reflected schema in the place of the models.

    One difference: production's server defaults are SQL text as the database keeps it (``'draft'::status``),
    and are compared as that text. alembic 1.9 renders such a text default on a String-affinity column with
    quotes of its own (``'draft'::status'``), which would make every enum default look like drift there.
    """

    def _compare_default(self, context: Any, conn_col: Any, meta_col: Any, conn_default: str | None,
                         meta_default: Any, rendered_meta_default: str | None) -> bool:
        text = getattr(getattr(meta_default, "arg", None), "text", None)
        return super()._compare_default(context, conn_col, meta_col, conn_default, meta_default,
                                        text if text is not None else rendered_meta_default)


def apply_ignore_rules(findings: list[DriftFinding], rules: Any, dialect: str
                       ) -> tuple[list[DriftFinding], list[dict[str, Any]]]:
    """The findings no ignore rule matches, and the ignored ones (as dicts, with the rule's ``reason``). A rule
    for check ``drift`` (or for any check) with a table / object / name / aspect ignores what it matches, as for
    ``schema_matches_models``; ``check = "drift"`` alone ignores every drift finding."""
    kept: list[DriftFinding] = []
    ignored: list[dict[str, Any]] = []
    applicable = [r for r in rules if r.applies_to("drift", dialect) and (not r.whole_check or r.check == "drift")]
    for finding in findings:
        data = finding.to_dict()
        rule = next((r for r in applicable if r.whole_check or r.matches(data)), None)
        if rule is None:
            kept.append(finding)
        else:
            ignored.append({**data, "reason": rule.reason})
    return kept, ignored


def unknown_revision(revision: str) -> DriftFinding:
    """Production is at a revision the migrations directory does not have (a branch not merged, a revision
    deleted after it ran): nothing can say what the pending steps are."""
    return DriftFinding("revision", None, revision, "unknown")


def compare(production: sa.MetaData, migrated_url: str, backend: Backend) -> list[DriftFinding]:
    """Differences between production's reflected schema and the database at ``migrated_url``."""
    engine = sa.create_engine(migrated_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            # the server defaults a database makes by itself (PostgreSQL SERIAL's nextval) are dropped as for the
            # copy: alembic does not report them on the migrated side either
            differences = ProductionComparison(conn, copyable_metadata(production, backend), backend).differences()
    finally:
        engine.dispose()
    return [DriftFinding.from_difference(d) for d in differences]
