"""SQLite: which existing tables a step recreated (alembic's batch mode: create ``_alembic_tmp_<table>``, copy
the rows, drop the table, rename the copy). The copy holds the database's write lock for as long as it takes."""
from __future__ import annotations

import re
from typing import Any

from ..findings import INFO, Finding
from .base import StepObserver, StepWatch

_BATCH_COPY = re.compile(r'^\s*CREATE TABLE\s+["`]?_alembic_tmp_(\w+)', re.IGNORECASE)


class SQLiteObserver(StepObserver):
    dialect = "sqlite"

    def end_step(self, watch: StepWatch, conn: Any, file: str | None) -> list[Finding]:
        findings: list[Finding] = []
        for statement in watch.statements:
            match = _BATCH_COPY.match(statement)
            if match and match.group(1) in watch.tables_before:
                table = match.group(1)
                rows = watch.tables_before[table]
                watch.table(table)["copied"] = True
                findings.append(Finding(
                    "batch-table-copy", INFO, self.dialect, watch.revision,
                    f"recreates table {table} ({rows} rows here) to alter it: every row is copied",
                    "observed", file=file, table=table, details={"rows": rows}))
        return findings
