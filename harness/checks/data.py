"""The ``data`` check: every upgrade step runs on a database that holds rows, and keeps them.

Users add their own rows and assertions in ``harness_data.py`` next to ``env.py`` (in the spirit of
pytest-alembic's ``at_revision_data``)::

    ROWS = {"<revision>": {"posts": [{"id": 1, "title": "Hello World"}]}}   # inserted while at <revision>

    def after_<revision>(conn):                                         # run right after upgrading to it
        assert conn.execute(sa.text("SELECT count(*) FROM posts WHERE slug IS NULL")).scalar() == 0
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa

from ..versions import select
from ..datagen import DEFAULT_EXCLUDE, LIBRARY, Reflected, count_rows, fill_database
from ..errors import MigrationsError
from ..results import FAILED, PASSED, CheckResult
from ..chain.steps import Step, describe_error, upgrade_steps
from .context import CheckContext

DATA_MODULE = "harness_data.py"
ROWS_PER_TABLE = 3
#: rows a table keeps getting before each step until it holds this many (then only when its schema changes)
SATURATED_ROWS = 4 * ROWS_PER_TABLE


def load_user_data(directory: str) -> ModuleType | None:
    """``harness_data.py`` from the migrations directory, if there is one."""
    path = Path(directory) / DATA_MODULE
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("harness_user_data", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise MigrationsError(f"{path} failed to load: {describe_error(exc)}") from exc
    return module


def _insert_user_rows(conn: sa.Connection, rows: dict[str, list[dict[str, Any]]]) -> None:
    with conn.begin():
        for table_name, table_rows in rows.items():
            table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
            conn.execute(table.insert(), table_rows)


def check_data(ctx: CheckContext) -> CheckResult:
    """Every upgrade step works on tables that hold rows, and the rows are still there afterwards.

    Many migrations pass on the empty database of a test run and fail on the first real one: a NOT NULL column
    added without a default, a unique index over values that repeat, a type narrowed below the stored data, a
    data migration that loses rows. Before each step every table gets a few rows generated from its reflected
    schema (plus the user's own rows); after it, row counts must not drop and the user's assertions must hold.
    """
    probe = ctx.state.get("data_probe")  # {"until": rev, "nulls": [[table, column], ...]}: see probe_spec
    policy = None
    if probe is not None:
        allowed = {tuple(pair) for pair in probe["nulls"]}
        policy = lambda table, column: (table, column) in allowed  # noqa: E731
    # harness_data.py's rows and assertions are about the main database's tables (not a multidb app's binds)
    user = load_user_data(ctx.env.directory) if ctx.env.bind is None else None
    user_rows: dict[str, Any] = getattr(user, "ROWS", {}) if user else {}
    engine = ctx.env.engine()
    unfilled: dict[str, str] = {}
    filled_at: dict[str, str] = {}  # table -> its fingerprint when it last got rows
    # the tables' reflections, reused while their fingerprints stay the same, and (where a fingerprint says all of
    # a table's reflection) kept for the worker's later sessions
    reflected = Reflected(library=LIBRARY if ctx.backend.fingerprints_are_canonical else None)
    walk: dict[str, Any] = {
        "number": 0, "asserted": 0, "result": None, "before": {},
        "carried": None,  # the counts after the last step, when nothing has written since
        "marks": None,  # the tables' fingerprints after the last step, when nothing has run since
    }
    listed = ctx.backend.fingerprints_list_tables  # the fingerprints' keys are the tables: no get_table_names()

    def fingerprints(conn: Any) -> dict[str, str]:
        with conn.begin():  # fill_database needs the connection outside a transaction afterwards
            return ctx.backend.table_fingerprints(conn) or {}

    def prepare(step: Step) -> bool:
        """Before a step: the user's rows for the revision it starts from, and generated rows in every table."""
        number = walk["number"]
        walk["number"] += 1
        current = step.revision.down_revisions[0] if len(step.revision.down_revisions) == 1 else None
        with engine.connect() as conn:
            try:
                if current and current in user_rows:
                    walk["carried"] = None
                    _insert_user_rows(conn, user_rows[current])
            except Exception as exc:
                walk["result"] = CheckResult("data", FAILED, current, f"inserting the rows ROWS[{current!r}] of "
                                             f"{DATA_MODULE} failed on {ctx.dialect}: {describe_error(exc)}")
                return False
            marks = walk["marks"] if walk["marks"] is not None else fingerprints(conn)
            names = sorted(marks) if listed else None
            counts = walk["carried"] if walk["carried"] is not None else count_rows(conn, names=names)
            # A table that holds enough rows and has not changed since it was last filled gets no more: rows
            # would pile up with every step (quadratic in the chain's length) and show the step nothing new.
            rested = {t for t, n in counts.items() if n >= SATURATED_ROWS and t in marks and filled_at.get(t) == marks[t]}
            filled = fill_database(conn, ROWS_PER_TABLE, seed=number, nulls=policy,
                                   exclude=(*DEFAULT_EXCLUDE, *rested), reflected=reflected, marks=marks,
                                   names=names)
            filled_at.update({t: marks.get(t, "") for t in filled.inserted})
            unfilled.update(filled.skipped)
            walk["before"] = {t: n + filled.inserted.get(t, 0) for t, n in counts.items()}
        return True

    def between(step: Step) -> bool:
        """After a step (committed): no table lost rows, and the user's assertions hold."""
        with engine.connect() as conn:
            marks = walk["marks"] = fingerprints(conn)  # the next step's, unless something runs in between
            after = walk["carried"] = count_rows(conn, names=sorted(marks) if listed else None)
        lost = [{"object": "table", "table": t, "name": t, "aspect": "rows_lost", "before": n, "after": after[t],
                 "text": f"table {t}: {n} rows before {step.revision.label}, {after[t]} after"}
                for t, n in walk["before"].items() if t in after and after[t] < n]
        if lost:
            result = ctx.verdict("data", lost, "", f"table(s) lost rows in {step.revision.label}",
                                 revision=step.revision.revision)
            if result.status == FAILED:
                walk["result"] = result
                return False
        hook = getattr(user, f"after_{step.revision.revision}", None) if user else None
        if hook:
            walk["asserted"] += 1
            walk["carried"] = walk["marks"] = None  # the user's function may write: the next step reads again
            try:
                with engine.connect() as conn, conn.begin():
                    hook(conn)
            except Exception as exc:
                walk["result"] = CheckResult("data", FAILED, step.revision.revision,
                                             f"after_{step.revision.revision} in {DATA_MODULE} failed on "
                                             f"{ctx.dialect}: {describe_error(exc)}")
                return False
        if probe is not None and step.revision.revision == probe["until"]:
            walk["result"] = CheckResult("data", PASSED, None, f"probe: {step.revision.label} passed")
            return False
        return True

    failure = ctx.run_steps(upgrade_steps(ctx.revisions), prepare=prepare, between=between)
    if failure:
        if probe is None:
            suspects = null_suspects(engine, failure.step.revision.path)
            if suspects:
                ctx.emit({"event": "data_suspects", "revision": failure.step.revision.revision, "columns": suspects})
        rows = sum(walk["before"].values())
        return CheckResult("data", FAILED, failure.step.revision.revision,
                           f"with {rows} rows in the tables, {failure.describe(ctx.dialect)}")
    if walk["result"] is not None:
        return walk["result"]
    asserted = walk["asserted"]
    ctx.at_head, ctx.at_base = True, False
    note = f"; {asserted} assertion(s) of {DATA_MODULE} held" if asserted else ""
    if unfilled:
        note += "; not filled: " + ", ".join(f"{t} ({why})" for t, why in sorted(unfilled.items()))
    return CheckResult("data", PASSED, None,
                       f"{len(ctx.revisions)} revisions applied with rows in every table, no rows lost{note}")


#: at most this many NULL-holding columns are probed one by one after a failure
MAX_SUSPECTS = 4


def null_suspects(engine: sa.Engine, migration_path: str) -> list[list[str]]:
    """Nullable columns that hold NULL now, in the tables the failing migration's source names (all tables when
    it names none): the candidates for "this step fails only on NULLs the schema allows"."""
    try:
        source = Path(migration_path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        source = ""
    found: list[list[str]] = []
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = [t for t in inspector.get_table_names() if t != "alembic_version"]
        named = [t for t in tables if re.search(rf"(?<![\w]){re.escape(t)}(?![\w])", source)]
        for table in named or tables:
            for column in inspector.get_columns(table):
                if not column.get("nullable"):
                    continue
                nulls = conn.execute(select(sa.func.count()).select_from(sa.table(table))
                                     .where(sa.column(column["name"]).is_(None))).scalar()
                if nulls:
                    found.append([table, column["name"]])
    return found


def probe_spec(revision: str, nulls: list[list[str]]) -> dict[str, Any]:
    """What a probe session of the data check runs: the same rows up to ``revision``, with generated NULLs only
    in ``nulls``, stopping right after ``revision``."""
    return {"until": revision, "nulls": nulls}
