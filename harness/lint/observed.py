"""The rules whose findings come from watching a step run on a scratch database that holds rows (see
:mod:`harness.lint.observe`). Only the catalogue entries live here."""
from __future__ import annotations

from .findings import ERROR, INFO, WARNING, Rule

OBSERVED_RULES: tuple[Rule, ...] = (
    Rule("access-exclusive-lock", WARNING, ("postgresql",), "observed",
         "the step holds an ACCESS EXCLUSIVE lock on an existing table until it commits",
         "While the step's transaction is open, every query on the table waits, reads included; with a long step "
         "or a lock queue behind it, the application stalls.",
         "Keep the transaction short (one change per migration), set lock_timeout, and use the non-blocking forms "
         "(CREATE INDEX CONCURRENTLY, ADD CONSTRAINT ... NOT VALID then VALIDATE CONSTRAINT)."),
    Rule("blocks-writes", WARNING, ("postgresql",), "observed",
         "the step holds a SHARE (or stronger, write-blocking) lock on an existing table until it commits",
         "A plain CREATE INDEX takes a SHARE lock: reads go on, but every INSERT, UPDATE and DELETE on the table "
         "waits until the index is built.",
         "CREATE INDEX CONCURRENTLY inside op.get_context().autocommit_block()."),
    Rule("table-rewrite", ERROR, ("postgresql",), "observed",
         "the step rewrote an existing table (its relfilenode changed)",
         "A rewrite copies every row under an ACCESS EXCLUSIVE lock: on a big table the application is down for "
         "as long as the copy takes.",
         "Change a column's type in steps (add a new column, backfill in batches, switch, drop the old one); "
         "avoid volatile defaults on ADD COLUMN."),
    Rule("table-copy", ERROR, ("mysql",), "observed",
         "an ALTER TABLE the step runs can be done neither INSTANT nor INPLACE with LOCK=NONE: the server copies "
         "the table",
         "ALGORITHM=COPY rebuilds the table and blocks writes to it for the whole copy.",
         "Split the change so each ALTER can run INSTANT or INPLACE (for example add a column without changing "
         "others), or use an online schema change tool (gh-ost, pt-online-schema-change)."),
    Rule("inplace-rebuild", INFO, ("mysql",), "observed",
         "an ALTER TABLE the step runs cannot be INSTANT: it runs INPLACE (LOCK=NONE), rebuilding or scanning "
         "the table",
         "INPLACE keeps writes going but still reads the whole table and takes a short exclusive lock at the "
         "start and the end; on a big table it takes long and replicas lag.",
         "Prefer changes MySQL can do INSTANT (adding a column last, changing a default) or run it off-peak."),
    Rule("non-transactional-ddl", INFO, ("mysql",), "observed",
         "the step runs more than one DDL statement, and MySQL / MariaDB commit each one: a failure half-way "
         "leaves the step half-applied",
         "alembic_version still names the previous revision after a failure, but part of the step's changes "
         "are in place, so neither re-running nor downgrading works without repair by hand.",
         "One DDL statement per migration on MySQL, or make each statement safe to re-run."),
    Rule("batch-table-copy", INFO, ("sqlite",), "observed",
         "the step recreates a table (a batch operation: create a copy, move the rows, drop, rename)",
         "SQLite cannot ALTER most things, so alembic's batch mode copies the table; it holds the database's "
         "write lock for the whole copy.",
         "Fine on small files; on a big one, run it when the application is stopped."),
)

OBSERVED_RULES += (
    Rule("narrow-type", ERROR, ("postgresql", "mysql"), "observed",
         "the step narrows an existing column's type (a shorter VARCHAR, a smaller integer or precision)",
         "Values that fit the old type may not fit the new one: the step fails on production's rows (PostgreSQL, "
         "strict MySQL), or MySQL / MariaDB in a lenient mode truncate them silently; and the old application "
         "version still writes values of the old size during the rollout.",
         "Check the longest stored value first (SELECT max(length(col))), or add a new column, backfill, switch."),
    Rule("step-fails", ERROR, ("sqlite", "postgresql", "mysql"), "observed",
         "the step fails on a database whose tables hold rows",
         "A migration that passes on the empty database of a test run and fails on the first one with rows "
         "stops the rollout half-way (and on MySQL leaves the step half-applied).",
         "Give new NOT NULL columns a server default or backfill them first; deduplicate before adding a unique "
         "constraint; make data migrations handle every value the schema allows."),
)
