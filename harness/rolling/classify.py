"""Which new revision broke what, and what that makes it: expand, contract or breaking.

The database moves through the new revisions one at a time; after each, the previous release's code is exercised
(``old[i]``: its failures after revision i, ``old[0]`` on the previous head) and so is the new release's
(``new[i]``; ``new[0]`` on the previous head). A failure belongs to the revision that changed it:

* the previous release's operation that fails after revision i and did not before it: revision i broke it;
* the new release's operation that fails before revision i and not after it: the new code needs revision i.

Operations are per column where the ORM allows (``select`` and ``update`` of one attribute), so a revision that
breaks a column of a class an earlier revision already broke is still seen. Then:

* **expand**: the previous release keeps working after it (safe to run before the deploy);
* **contract**: it breaks the previous release, and the new release does not need it (run it once the previous
  release is gone);
* **breaking**: it breaks the previous release and the new release needs it: no deploy order keeps both working.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .exercise import Failure

EXPAND, CONTRACT, BREAKING = "expand", "contract", "breaking"
SCHEMA_FIRST, CODE_FIRST = "schema-first", "code-first"


@dataclass(frozen=True)
class RevisionVerdict:
    revision: str
    message: str
    klass: str
    #: the previous release's operations it broke, then the new release's operations that need it
    failures: tuple[Failure, ...]

    @property
    def breaks_previous(self) -> tuple[Failure, ...]:
        return tuple(f for f in self.failures if f.release == "previous")

    @property
    def needed_by_new(self) -> tuple[Failure, ...]:
        return tuple(f for f in self.failures if f.release == "new")

    def to_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "message": self.message, "class": self.klass,
                "failures": [f.to_dict() for f in self.failures]}


def _keys(failures: Sequence[Failure]) -> set[tuple[Any, ...]]:
    return {f.key for f in failures}


def classify(revisions: Sequence[tuple[str, str]], old: Sequence[Sequence[Failure]],
             new: Sequence[Sequence[Failure]]) -> list[RevisionVerdict]:
    """``revisions``: (id, message) in the order applied; ``old`` / ``new``: failures on the previous head, then
    after each revision (``len(revisions) + 1`` lists each; fewer when a step failed: the rest is unclassified)."""
    verdicts = []
    for i, (revision, message) in enumerate(revisions, 1):
        if i >= len(old) or i >= len(new):
            break
        broke = [f for f in old[i] if f.key not in _keys(old[i - 1])]
        needs = [f for f in new[i - 1] if f.key not in _keys(new[i])]
        klass = (BREAKING if needs else CONTRACT) if broke else EXPAND
        verdicts.append(RevisionVerdict(revision, message, klass, tuple(broke + needs)))
    return verdicts


def deploy_problems(verdicts: Sequence[RevisionVerdict], order: str) -> list[str]:
    """Why this deploy cannot be done in ``order`` with both releases working throughout (empty: it can).

    ``schema-first`` (migrate before the new code rolls out; contract revisions wait until the previous release is
    gone): a breaking revision, or a contract revision before an expand one (the expand one must run before the
    deploy, and cannot without it). ``code-first`` (the new code rolls out, then the migrations run): a revision the
    new code needs, since the new code runs before it exists.
    """
    problems = []
    if order == CODE_FIRST:
        for verdict in verdicts:
            if verdict.needed_by_new:
                problems.append(f"{verdict.revision} is needed by the new release, which runs before it in a "
                                "code-first deploy")
        return problems
    for verdict in verdicts:
        if verdict.klass == BREAKING:
            problems.append(f"{verdict.revision} is breaking: no order keeps both releases working")
    contracts = [v for v in verdicts if v.klass == CONTRACT]
    for index, verdict in enumerate(verdicts):
        if verdict.klass == EXPAND and any(verdicts.index(c) < index for c in contracts):
            first = next(c for c in contracts if verdicts.index(c) < index)
            problems.append(f"{verdict.revision} (expand) comes after {first.revision} (contract): the expand part "
                            "cannot run before the deploy without the contract part")
    return problems


#: what the text suggests for a breaking revision, or an unorderable deploy
SPLIT_ADVICE = ("split it the usual way: (1) expand: add the new column or table (nullable, or with a server default) "
                "and deploy code that writes both the old and the new; (2) backfill the new from the old; (3) switch "
                "reads to the new and deploy; (4) contract: drop the old in a later release, once no running code "
                "maps it")

__all__ = ["BREAKING", "CODE_FIRST", "CONTRACT", "EXPAND", "SCHEMA_FIRST", "RevisionVerdict", "SPLIT_ADVICE",
           "classify", "deploy_problems"]
