"""The catalogue of the rules on the rendered SQL (ours, and the squawk rules that carry our names)."""
from __future__ import annotations

from .findings import ERROR, INFO, WARNING, Rule

PG, MY, LITE = "postgresql", "mysql", "sqlite"

SQL_RULES: tuple[Rule, ...] = (
    Rule("drop-table", WARNING, (PG, MY, LITE), "sql",
         "the step drops an existing table",
         "The application version still running during a rollout (and any other client) fails on every query of "
         "the table, and its rows are gone: a rollback of the code cannot bring them back.",
         "Stop using the table in a release first; drop it in a later one, after a backup."),
    Rule("drop-column", WARNING, (PG, MY, LITE), "sql",
         "the step drops a column of an existing table",
         "Code still running during the rollout that selects or inserts the column fails (SQLAlchemy names every "
         "mapped column in its queries), and the column's data is lost.",
         "Expand and contract: deploy code that no longer uses the column (mark it deferred / remove it from the "
         "model), then drop it in a later migration."),
    Rule("rename-column", WARNING, (PG, MY, LITE), "sql",
         "the step renames a column of an existing table",
         "Code running during the rollout still uses the old name and fails until the new code is everywhere; "
         "a rollback of the code fails against the new name.",
         "Add the new column, write to both, backfill, switch reads, then drop the old column in a later release "
         "(or a view / generated column for the transition)."),
    Rule("rename-table", WARNING, (PG, MY, LITE), "sql",
         "the step renames an existing table",
         "Every query of the old code names the old table and fails as soon as the rename commits.",
         "Create the new table (or a view under the old name) and move clients over before dropping the old name."),
    Rule("change-column-type", WARNING, (PG, MY, LITE), "sql",
         "the step changes the type of a column of an existing table (a type change; whether it narrows is "
         "what the observed findings tell)",
         "Most type changes rewrite or copy the table under a lock that blocks writes (PostgreSQL: ACCESS "
         "EXCLUSIVE, reads too); a narrowing fails on, or silently truncates, existing values; clients may "
         "read values of an unexpected type.",
         "Add a column of the new type, backfill it in batches, switch the code, drop the old column later. "
         "Widening a VARCHAR is cheap on PostgreSQL and (up to 255 bytes) INPLACE on MySQL."),
    Rule("set-not-null", WARNING, (PG, MY, LITE), "sql",
         "the step makes an existing column NOT NULL",
         "PostgreSQL scans the whole table under an ACCESS EXCLUSIVE lock to check it; MySQL / MariaDB rebuild "
         "the table (and in non-strict mode turn NULLs into 0 / ''); any NULL row makes the step fail.",
         "Backfill first; on PostgreSQL 12+ add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it, then "
         "SET NOT NULL (which then needs no scan) and drop the CHECK."),
    Rule("not-null-without-default", ERROR, (PG, MY, LITE), "sql",
         "the step adds a NOT NULL column without a DEFAULT to an existing table",
         "PostgreSQL and SQLite refuse it as soon as the table has rows (the step fails in production, not on an "
         "empty test database); MySQL / MariaDB accept it and silently fill 0 / '' (the implicit default, even "
         "in strict mode), so rows get a value nobody chose.",
         "Add the column with a server_default (or nullable), backfill, then make it NOT NULL in a later "
         "migration."),
    Rule("unique-on-existing-table", WARNING, (PG, MY, LITE), "sql",
         "the step adds a UNIQUE constraint (or unique index) to an existing table",
         "Building the unique index reads the whole table under a lock (PostgreSQL: ACCESS EXCLUSIVE for ADD "
         "CONSTRAINT ... UNIQUE), and the step fails if existing rows hold duplicates.",
         "PostgreSQL: CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX; everywhere: "
         "find and fix duplicates before the migration."),
    Rule("volatile-default", WARNING, (PG,), "sql",
         "the step adds a column with a volatile DEFAULT (random(), gen_random_uuid(), clock_timestamp()...) to "
         "an existing table",
         "Since PostgreSQL 11 a constant or STABLE default (now(), CURRENT_TIMESTAMP, a literal) is stored once "
         "and costs nothing; a VOLATILE one must be computed per row, so the table is rewritten under an ACCESS "
         "EXCLUSIVE lock.",
         "Add the column without a default (or with a constant one), set the default afterwards for new rows, "
         "and backfill existing rows in batches."),
    Rule("alter-type-add-value", WARNING, (PG,), "sql",
         "the step adds a value to a PostgreSQL enum type (ALTER TYPE ... ADD VALUE)",
         "Before PostgreSQL 12 it cannot run inside a transaction block at all (alembic wraps every migration in "
         "one); on 12+ the new value cannot be used in the same transaction (\"unsafe use of new value\"), e.g. by "
         "a backfill or a server_default in the same migration.",
         "Run it inside op.get_context().autocommit_block(), in a migration of its own, before the migrations "
         "that use the value."),
    Rule("index-without-concurrently", WARNING, (PG,), "squawk",
         "the step creates an index on an existing table without CONCURRENTLY",
         "A plain CREATE INDEX takes a SHARE lock: every INSERT, UPDATE and DELETE on the table waits until the "
         "index is built.",
         "op.create_index(..., postgresql_concurrently=True) inside `with op.get_context().autocommit_block():` "
         "(CONCURRENTLY cannot run in a transaction)."),
    Rule("constraint-without-not-valid", WARNING, (PG, MY), "sql",
         "the step adds a FOREIGN KEY or CHECK constraint to an existing table and validates every row at once",
         "PostgreSQL scans the table (and the referenced one) while blocking writes to both (SHARE ROW EXCLUSIVE "
         "for a FK, ACCESS EXCLUSIVE for a CHECK); MySQL / MariaDB have no NOT VALID: adding a FK or CHECK to an "
         "existing table checks all rows with the table locked (or copies it), and fails on any bad row.",
         "PostgreSQL: ADD CONSTRAINT ... NOT VALID (op.execute, or postgresql_not_valid=True), then VALIDATE "
         "CONSTRAINT in a later migration (it takes only a SHARE UPDATE EXCLUSIVE lock). MySQL: check the rows "
         "first, run it off-peak or with an online schema change tool."),
    Rule("no-lock-timeout", INFO, (PG, MY), "squawk",
         "the revision takes strong locks on existing tables without a lock timeout (neither the migration nor "
         "env.py sets lock_timeout / lock_wait_timeout)",
         "A DDL statement waiting for its lock (behind one long query) blocks every query that comes after it: "
         "the application stalls although the DDL itself would be quick. The harness cannot see the session "
         "settings your deployment uses, so this is only a reminder.",
         "op.execute(\"SET lock_timeout = '5s'\") (MySQL: SET SESSION lock_wait_timeout = 5) at the start of "
         "upgrade(), or in env.py for every migration, "
         "and retry the migration when it times out."),
    Rule("batch-recreate", INFO, (LITE,), "sql",
         "the step recreates a table in SQLite batch mode (CREATE TABLE _alembic_tmp_x, copy the rows, drop, "
         "rename)",
         "The copy holds SQLite's write lock for as long as it takes, and whatever the table had that the batch "
         "operation did not know of (triggers, a view's dependency) is lost with the old table.",
         "Fine on small files; on a big one run it while the application is stopped, and give batch_alter_table "
         "the table's full definition (copy_from / table_args) when it has more than autogenerate knows."),
    Rule("offline-sql-parameters", WARNING, (PG, MY, LITE), "offline",
         "the revision's upgrade --sql holds bound parameters (%(name)s, ?) instead of values: the script cannot "
         "be run as it is",
         "A DBA who applies the `flask db upgrade --sql` output gets a syntax error at that statement, half-way "
         "through the script; the SQL rules cannot read it either.",
         "Configure the offline context with literal_binds=True in env.py's run_migrations_offline (Flask-Migrate's "
         "current template does), or give op.execute() literal SQL."),
    Rule("offline-sql-failed", WARNING, (PG, MY, LITE), "offline",
         "the revision's upgrade --sql cannot be generated: it runs only against a live database",
         "Reviewers (and DBAs who apply `flask db upgrade --sql` scripts) cannot read what the step will do, and "
         "the SQL rules cannot check it; on SQLite, batch mode needs the live table to copy it.",
         "Keep data migrations that read rows apart from DDL; branch on op.get_context().as_sql (or "
         "context.is_offline_mode()) to emit plain SQL offline; on SQLite pass copy_from= to batch_alter_table."),
)
