"""[lint] the offline SQL of each revision per dialect (rendered by alembic in a real worker, on URLs that are never
connected to), the rules on it (ours, and the real squawk binary for PostgreSQL), the source rules, allowances
and the catalogue texts. No database server is needed."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import REPO
from projects import POSTS, USERS, Rev, make_project

from harness.errors import ConfigError
from harness.lint.allow import (Allowance, allowances_from_file, allowances_from_pyproject, apply_allowances,
                                lint_settings)
from harness.lint.catalogue import all_rules, explain, list_rules
from harness.lint.findings import Finding
from harness.lint.offline import offline_findings, offline_sql, write_sql_files
from harness.lint.rules import sql_findings
from harness.lint.source_rules import source_findings

pytestmark = pytest.mark.fast
ALL = ("sqlite", "postgresql", "mysql")


def only_on(dialects: str, body: str) -> str:
    """A migration body that runs on some dialects only (``if op.get_context().dialect.name in (...)``)."""
    names = ", ".join(repr(d) for d in dialects.split(","))
    return f"if op.get_context().dialect.name in ({names},):\n" + textwrap.indent(textwrap.dedent(body).strip(), "    ")


def rev(revision: str, message: str, *upgrade: str, **kwargs: object) -> Rev:
    """A revision whose upgrade is ``upgrade``'s parts (each dedented) one after the other; no downgrade."""
    body = "\n".join(textwrap.dedent(part).strip("\n") for part in upgrade)
    return Rev(revision, message, body, "pass", **kwargs)  # type: ignore[arg-type]


USERS_TABLE = ('sa.Table("users", sa.MetaData(), sa.Column("id", sa.Integer(), primary_key=True), '
               'sa.Column("display_name", sa.String(80), nullable=False), sa.Column("age", sa.Integer()), '
               'sa.Column("nick", sa.String(20), nullable=False, server_default="x"))')

#: one revision per case; each test looks at the findings of its revision
CASES = [
    USERS, POSTS,
    rev("c03", "drop posts title", 'op.drop_column("posts", "title")',
        imports="# migration-harness: allow drop-column@mysql — the title is unused since 2.3"),
    rev("c04", "ops on a new table", """
        op.create_table("tags", sa.Column("id", sa.Integer(), nullable=False),
                        sa.Column("name", sa.String(50), nullable=True), sa.PrimaryKeyConstraint("id"))
        op.add_column("tags", sa.Column("slug", sa.String(50), nullable=False))
        op.create_index("ix_tags_name", "tags", ["name"], unique=True)
        op.drop_column("tags", "name")
    """, only_on("postgresql,mysql", """
        op.create_foreign_key("fk_tags_id_users", "tags", "users", ["id"], ["id"])
        op.alter_column("tags", "slug", type_=sa.String(80), existing_type=sa.String(50))
    """)),
    rev("c05", "add users age and nick", """
        op.add_column("users", sa.Column("age", sa.Integer(), nullable=False))
        op.add_column("users", sa.Column("nick", sa.String(20), nullable=False, server_default="x"))
    """),
    rev("c06", "rename users name", 'op.alter_column("users", "name", new_column_name="display_name", '
        'existing_type=sa.String(80), existing_nullable=False)'),
    rev("c07", "narrow display_name", only_on("postgresql,mysql", """
        op.alter_column("users", "display_name", type_=sa.String(40), existing_type=sa.String(80),
                        existing_nullable=False)
    """), only_on("sqlite", f"""
        with op.batch_alter_table("users", recreate="always", copy_from={USERS_TABLE}) as batch_op:
            batch_op.alter_column("display_name", type_=sa.String(40), existing_type=sa.String(80))
    """)),
    rev("c08", "unique display names", only_on("postgresql,mysql", """
        op.create_unique_constraint("uq_users_display_name", "users", ["display_name"])
    """), only_on("sqlite", """
        op.create_index("uq_users_display_name", "users", ["display_name"], unique=True)
    """)),
    rev("c09", "index posts user_id", 'op.create_index("ix_posts_user_id", "posts", ["user_id"])'),
    rev("c10", "index users age concurrently", """
        with op.get_context().autocommit_block():
            op.create_index("ix_users_age", "users", ["age"], postgresql_concurrently=True)
    """),
    rev("c11", "fk posts users again", only_on("postgresql,mysql", """
        op.create_foreign_key("fk_posts_user_id_again", "posts", "users", ["user_id"], ["id"])
    """)),
    rev("c12", "fk not valid", only_on("postgresql", """
        op.execute("ALTER TABLE posts ADD CONSTRAINT fk_posts_nv FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID")
    """)),
    rev("c13", "volatile default", only_on("postgresql", """
        op.add_column("users", sa.Column("token", sa.String(36), server_default=sa.text("gen_random_uuid()")))
    """)),
    rev("c14", "stable default", only_on("postgresql", """
        op.add_column("users", sa.Column("seen_at", sa.DateTime(timezone=True), server_default=sa.func.now()))
    """)),
    rev("c15", "enum add value", only_on("postgresql", """
        op.execute("CREATE TYPE mood AS ENUM ('happy')")
        op.create_table("moods", sa.Column("id", sa.Integer(), primary_key=True))
    """)),
    rev("c16", "enum add value later", only_on("postgresql", 'op.execute("ALTER TYPE mood ADD VALUE \'meh\'")')),
    rev("c17", "drop nick with a lock timeout", """
        if op.get_context().dialect.name == "postgresql":  # squawk before 2.5x asks for both in one rule
            op.execute("SET lock_timeout = '5s'")
            op.execute("SET statement_timeout = '60s'")
        op.drop_column("users", "nick")
    """),
    rev("c18", "rename tags", 'op.rename_table("tags", "labels")'),
    rev("c19", "drop labels", 'op.drop_table("labels")'),
    rev("c20", "inspect the live database", """
        columns = [c["name"] for c in sa.inspect(op.get_bind()).get_columns("users")]
        if "age" in columns:
            op.drop_column("users", "age")
    """),
    rev("c21", "create notes", 'op.create_table("notes", sa.Column("id", sa.Integer(), primary_key=True))'),
    rev("c22", "branch one", 'op.create_table("one", sa.Column("id", sa.Integer(), primary_key=True))',
        down_revision="c21"),
    rev("c23", "branch two", 'op.create_table("two", sa.Column("id", sa.Integer(), primary_key=True))',
        down_revision="c21"),
    rev("c24", "merge", "pass", down_revision=("c22", "c23")),
    rev("c25", "require age", only_on("postgresql,mysql", """
        op.alter_column("users", "age", nullable=False, existing_type=sa.Integer())
    """)),
    rev("c26", "new table then an existing one", """
        op.create_table("drafts", sa.Column("id", sa.Integer(), primary_key=True))
        op.add_column("drafts", sa.Column("body", sa.Text(), nullable=False))
        op.create_index("ix_posts_user_id_drafts", "posts", ["user_id"])
    """),
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict]]:
    """dialect → revision → offline event, for the CASES chain."""
    project = make_project(tmp_path_factory.mktemp("lint") / "p", CASES)
    return {dialect: {e["revision"]: e for e in offline_sql("app:create_app", None, dialect, None, None,
                                                            str(project), "lintrule", 60)}
            for dialect in ALL}


def findings(rendered: dict, dialect: str, revision: str) -> list[Finding]:
    event = rendered[dialect][revision]
    assert event["error"] is None, event["error"]
    return sql_findings(dialect, revision, event["sql"], event["file"])


def rules(rendered: dict, dialect: str, revision: str) -> set[str]:
    return {f.rule for f in findings(rendered, dialect, revision)}


def test_every_revision_renders_offline_one_at_a_time_except_the_one_that_reads_the_database(rendered) -> None:
    for dialect in ALL:
        events = rendered[dialect]
        assert set(events) == {r.revision for r in CASES}
        order = list(events)
        for case in CASES[1:]:  # parents before children (the two branches in either order)
            parents = (case.down_revision,) if isinstance(case.down_revision, str) else case.down_revision
            parents = parents if parents != ("<previous>",) else (CASES[CASES.index(case) - 1].revision,)
            assert all(order.index(p) < order.index(case.revision) for p in parents), case.revision
        failed = {r for r, e in events.items() if e["error"]}
        assert failed == {"c20"}, (dialect, {r: events[r]["error"] for r in failed})
        # each revision alone: the first creates alembic_version, later ones only move it
        assert "CREATE TABLE alembic_version" in events["a001"]["sql"]
        assert "CREATE TABLE alembic_version" not in events["c21"]["sql"]
        # a branch renders only itself; the merge renders no table of either branch
        assert "CREATE TABLE one" in events["c22"]["sql"] and "CREATE TABLE two" not in events["c22"]["sql"]
        assert "CREATE TABLE" not in events["c24"]["sql"] and "c24" in events["c24"]["sql"]


def test_a_migration_that_inspects_the_live_database_names_revision_file_and_line(rendered) -> None:
    for dialect in ALL:
        event = rendered[dialect]["c20"]
        assert event["sql"] is None and event["file"].endswith(".py")
        assert event["error"].startswith(f"c20 cannot be rendered offline on {dialect}: ")
        assert "_inspect_the_live_database.py:16)" in event["error"], event["error"]  # the sa.inspect line
        assert "op.get_bind()" in event["error"]
        (finding,) = offline_findings(dialect, [event])
        assert (finding.rule, finding.line, finding.revision) == ("offline-sql-failed", 16, "c20")
        assert rendered[dialect]["c21"]["error"] is None  # the next revisions still render


def test_drop_column_on_an_existing_table_is_found_everywhere_and_points_at_the_op_line(rendered) -> None:
    for dialect in ALL:
        (finding,) = [f for f in findings(rendered, dialect, "c03") if f.rule == "drop-column"]
        assert finding.table == "posts" and finding.line == 16 and finding.file.endswith("_drop_posts_title.py")
        assert "DROP COLUMN title" in finding.statement
    assert findings(rendered, "postgresql", "c03")[0].source in ("sql", "squawk")


def test_operations_on_a_table_created_in_the_same_migration_are_not_findings(rendered) -> None:
    for dialect in ALL:
        assert findings(rendered, dialect, "c04") == [], dialect
    for revision in ("a001", "a002", "c21", "c22", "c23", "c24"):
        for dialect in ALL:
            assert findings(rendered, dialect, revision) == [], (dialect, revision)


def test_a_not_null_column_without_default_is_found_with_each_databases_behaviour(rendered) -> None:
    for dialect in ALL:
        found = [f for f in findings(rendered, dialect, "c05") if f.rule == "not-null-without-default"]
        assert len(found) == 1, (dialect, found)  # age; nick has a server default
        assert found[0].line == 16 and found[0].severity == "error"
    mysql = next(f for f in findings(rendered, "mysql", "c05") if f.rule == "not-null-without-default")
    assert "silently fill" in mysql.message and "''" in mysql.message


def test_renames_type_changes_and_table_drops(rendered) -> None:
    for dialect in ALL:
        assert "rename-column" in rules(rendered, dialect, "c06"), dialect
        assert "rename-table" in rules(rendered, dialect, "c18"), dialect
        assert "drop-table" in rules(rendered, dialect, "c19"), dialect
    for dialect in ("postgresql", "mysql"):
        found = [f for f in findings(rendered, dialect, "c07") if f.rule == "change-column-type"]
        assert len(found) == 1 and found[0].line == 17, (dialect, found)
    # a rename on MySQL is a CHANGE that restates the type: only the rename is reported
    assert "change-column-type" not in rules(rendered, "mysql", "c06")


def test_sqlite_batch_recreation_is_an_info_finding(rendered) -> None:
    (finding,) = findings(rendered, "sqlite", "c07")
    assert (finding.rule, finding.severity, finding.table) == ("batch-recreate", "info", "users")
    assert "drop-table" not in rules(rendered, "sqlite", "c07")  # the batch's own DROP / RENAME are no findings


def test_unique_constraints_on_existing_tables(rendered) -> None:
    for dialect in ALL:
        assert "unique-on-existing-table" in rules(rendered, dialect, "c08"), dialect


def test_an_index_without_concurrently_on_postgresql_only(rendered) -> None:
    assert "index-without-concurrently" in rules(rendered, "postgresql", "c09")
    assert rules(rendered, "mysql", "c09") == rules(rendered, "sqlite", "c09") == set()
    assert "CONCURRENTLY" in rendered["postgresql"]["c10"]["sql"]
    assert not rules(rendered, "postgresql", "c10") & {"index-without-concurrently",
                                                        "squawk:ban-concurrent-index-creation-in-transaction"}


def test_foreign_keys_with_and_without_not_valid(rendered) -> None:
    for dialect in ("postgresql", "mysql"):
        (finding,) = [f for f in findings(rendered, dialect, "c11") if f.rule == "constraint-without-not-valid"]
        assert finding.table == "posts" and finding.line == 17
    assert "no NOT VALID" in findings(rendered, "mysql", "c11")[0].message
    assert "constraint-without-not-valid" not in rules(rendered, "postgresql", "c12")


def test_only_a_truly_volatile_default_rewrites_on_postgresql(rendered) -> None:
    assert "volatile-default" in rules(rendered, "postgresql", "c13")
    assert "volatile-default" not in rules(rendered, "postgresql", "c14")  # now() is STABLE: no rewrite on 11+


def test_alter_type_add_value(rendered) -> None:
    assert "alter-type-add-value" in rules(rendered, "postgresql", "c16")
    assert "alter-type-add-value" not in rules(rendered, "postgresql", "c15")


def test_lock_timeout_is_asked_for_only_without_set_lock_timeout(rendered) -> None:
    assert "no-lock-timeout" in rules(rendered, "postgresql", "c03")
    assert rules(rendered, "postgresql", "c17") == {"drop-column"}


def test_making_an_existing_column_not_null(rendered) -> None:
    for dialect in ("postgresql", "mysql"):
        found = [f for f in findings(rendered, dialect, "c25") if f.rule == "set-not-null"]
        assert len(found) == 1 and found[0].line == 17, (dialect, found)
        assert "change-column-type" not in rules(rendered, dialect, "c25")  # MODIFY without type_=


def test_the_lock_timeout_reminder_survives_a_new_table_first(rendered) -> None:
    (reminder,) = [f for f in findings(rendered, "postgresql", "c26") if f.rule == "no-lock-timeout"]
    assert reminder.table == "posts"
    assert {f.table for f in findings(rendered, "postgresql", "c26")} == {"posts"}


def test_squawk_style_rules_are_off_and_can_be_turned_on(rendered) -> None:
    event = rendered["postgresql"]["c13"]
    assert not any(f.rule.startswith("squawk:prefer") for f in findings(rendered, "postgresql", "c13"))
    turned_on = sql_findings("postgresql", "c13", event["sql"], event["file"], enable=["prefer-text-field"])
    assert "squawk:prefer-text-field" in {f.rule for f in turned_on}


def test_sql_files_are_numbered_in_chain_order_and_failures_are_comments(rendered, tmp_path: Path) -> None:
    events = list(rendered["mysql"].values())
    paths = write_sql_files(tmp_path, "mysql", events)
    assert [p.name for p in paths[:3]] == ["0001_a001.sql", "0002_a002.sql", "0003_c03.sql"]
    assert paths[2].read_text().startswith("-- revision c03: drop posts title\n-- parents: a002\n")
    failed = next(p for p in paths if p.name.endswith("_c20.sql")).read_text()
    assert all(line.startswith("--") for line in failed.splitlines() if line.strip())
    assert "-- ERROR: c20 cannot be rendered offline" in failed


@pytest.mark.skipif(sa.__version__.startswith("1."), reason="the example app uses SQLAlchemy 2.0 mappings")
def test_the_example_chain_renders_on_every_dialect_but_its_row_reading_and_sqlite_batch_steps() -> None:
    for dialect in ALL:
        events = offline_sql("app:create_app", None, dialect, None, None, str(REPO), "lintexmp", 60)
        assert len(events) == 10
        failed = {e["revision"]: e["error"] for e in events if e["error"]}
        # the slug backfill reads rows through op.get_bind(): it cannot run in --sql mode anywhere
        expected = {"667650b81e78"} | ({"4daeecfbc53e", "c0d05e7c5b3a", "f66c6918c405"} if dialect == "sqlite" else set())
        assert set(failed) == expected, failed
        assert "667650b81e78_add_posts_slug_backfilled_from_title.py:44" in failed["667650b81e78"]
        for revision, error in failed.items():
            if revision != "667650b81e78":
                assert "SQLite batch mode reflects the live table" in error
                assert offline_findings(dialect, [e for e in events if e["revision"] == revision])[0].severity == "info"


def test_from_and_to_render_only_the_window(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", CASES[:6])
    events = offline_sql("app:create_app", None, "postgresql", "c03", "c05", str(project), "lintwind", 60)
    assert [e["revision"] for e in events] == ["c04", "c05"]
    assert "Running upgrade c03 -> c04" in events[0]["sql"]


PARAMETERS_REV = rev("c03", "unlimited is -1", """
    users = sa.table("users", sa.column("age", sa.Integer()))
    op.execute(users.update().where(users.c.age == 0).values(age=-1))
""")


@pytest.mark.parametrize("literal_binds, expected", [(False, {"offline-sql-parameters"}), (True, set())])
def test_offline_sql_with_bound_parameters_cannot_be_run_as_it_is(tmp_path: Path, literal_binds: bool,
                                                                  expected: set[str]) -> None:
    """Found on Mailu: an env.py whose run_migrations_offline has no literal_binds=True renders %(age_1)s."""
    project = make_project(tmp_path / "p", [USERS, POSTS, PARAMETERS_REV])
    env_py = project / "migrations" / "env.py"
    if not literal_binds:
        env_py.write_text(env_py.read_text().replace("literal_binds=True", "literal_binds=False"))
    for dialect in ("postgresql", "mysql"):
        [event] = offline_sql("app:create_app", None, dialect, "a002", None, str(project), "lintparm", 60)
        found = {f.rule for f in sql_findings(dialect, "c03", event["sql"], event["file"])}
        assert found & {"offline-sql-parameters", "squawk:syntax-error"} == expected, (dialect, found, event["sql"])
        if expected:
            [parameters] = [f for f in sql_findings(dialect, "c03", event["sql"], event["file"])
                            if f.rule == "offline-sql-parameters"]
            assert ("%(age_1)s" if dialect == "postgresql" else "(%s)") in parameters.message
            assert parameters.line == 17  # the op.execute line


def test_an_unloadable_app_is_a_config_error(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", [USERS])
    with pytest.raises(ConfigError, match="nosuchmodule"):
        offline_sql("nosuchmodule:create_app", None, "postgresql", None, None, str(project), "lintfail", 60)


# -- source rules ----------------------------------------------------------------------------------------------

def test_no_downgrade_and_empty_upgrade(tmp_path: Path) -> None:
    chain = [USERS,
             Rev("s02", "nothing to undo", 'op.drop_column("users", "name")', 'raise NotImplementedError("no")'),
             Rev("s03", "empty", '"""nothing"""', "pass"),
             Rev("s04", "fine", 'op.add_column("users", sa.Column("x", sa.Integer()))', 'op.drop_column("users", "x")')]
    versions = make_project(tmp_path / "p", chain) / "migrations" / "versions"
    file = {p.name[:3]: str(p) for p in versions.glob("*.py")}
    assert [(f.rule, f.database, f.line) for f in source_findings("s02", file["s02"], ["mysql"])] == \
        [("no-downgrade", "mysql", 19)]
    assert {f.rule for f in source_findings("s03", file["s03"], ALL)} == {"no-downgrade", "empty-upgrade"}
    assert len(source_findings("s03", file["s03"], ALL)) == 6
    assert source_findings("s04", file["s04"], ALL) == []
    merge = versions / "s06_merge.py"
    merge.write_text("revision = 's06'\ndown_revision = ('s03', 's04')\n\n\ndef upgrade():\n    pass\n\n\n"
                     "def downgrade():\n    pass\n")
    assert source_findings("s06", str(merge), ALL) == []  # a merge is empty by nature
    missing = versions / "s05_missing.py"
    missing.write_text("revision = 's05'\ndown_revision = 's04'\n\n\ndef upgrade():\n    pass\n")
    assert {(f.rule, f.line) for f in source_findings("s05", str(missing), ["sqlite"])} == \
        {("no-downgrade", 5), ("empty-upgrade", 5)}


# -- allowances ------------------------------------------------------------------------------------------------

def finding(rule: str, revision: str = "c03", database: str = "mysql") -> Finding:
    return Finding(rule=rule, severity="warning", database=database, revision=revision, message="m", source="sql")


def test_a_marker_acknowledges_that_rule_in_that_revision_on_its_database(rendered) -> None:
    allowances = allowances_from_file(rendered["mysql"]["c03"]["file"])
    assert allowances == [Allowance("drop-column", "the title is unused since 2.3", "c03", "mysql",
                                    allowances[0].origin)]
    assert allowances[0].origin.endswith("_drop_posts_title.py:8")
    results = apply_allowances([finding("drop-column"), finding("drop-column", database="postgresql"),
                                finding("drop-column", revision="c05"), finding("drop-table")], allowances)
    assert [f.allowed for f in results] == ["the title is unused since 2.3", None, None, None]


@pytest.mark.parametrize("marker", ["allow drop-column - ok", "allow drop-column: ok", "allow drop-column \u2014 ok",
                                    "allow drop-column \u2013 ok", "ALLOW drop-column@sqlite - ok"])
def test_marker_spellings(tmp_path: Path, marker: str) -> None:
    path = tmp_path / "m.py"
    path.write_text(f"revision = 'r1'\n# migration-harness: {marker}\n")
    (allowance,) = allowances_from_file(path)
    assert (allowance.rule, allowance.reason, allowance.revision) == ("drop-column", "ok", "r1")


@pytest.mark.parametrize("marker, message", [
    ("allow drop-column", "gives no reason"), ("allow drop-column \u2014   ", "gives no reason"),
    ("allow drop-colum - typo", "did you mean drop-column"), ("allow drop-column@oracle - x", "unknown database"),
])
def test_a_bad_marker_is_an_error_naming_file_and_line(tmp_path: Path, marker: str, message: str) -> None:
    path = tmp_path / "m.py"
    path.write_text(f"revision = 'r1'\n\n# migration-harness: {marker}\n")
    with pytest.raises(ConfigError, match=message) as caught:
        allowances_from_file(path)
    assert f"{path}:3" in str(caught.value)


def write_pyproject(tmp_path: Path, lint: str) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.migration-harness]\napp = "app:create_app"\n\n'
                                             f"[tool.migration-harness.lint]\n{textwrap.dedent(lint)}")
    return tmp_path


def test_pyproject_allowances_and_settings(tmp_path: Path) -> None:
    cwd = write_pyproject(tmp_path, """
        fail_on = "error"
        disable = ["squawk:require-concurrent-index-deletion", "no-lock-timeout"]
        enable = ["prefer-robust-stmts"]
        allow = [{rule = "drop-column", revision = "c0", database = "mysql", reason = "unused"},
                 {rule = "drop-table", reason = "legacy"}]
    """)
    settings = lint_settings(cwd)
    assert settings.fail_on == "error" and settings.enable == ("prefer-robust-stmts",)
    assert settings.disable == ("squawk:require-concurrent-index-deletion", "no-lock-timeout")
    assert not settings.enabled(finding("no-lock-timeout"))
    results = apply_allowances([finding("drop-column"), finding("drop-column", database="sqlite"),
                                finding("drop-table", revision="zz", database="sqlite")],
                               allowances_from_pyproject(cwd))
    assert [f.allowed for f in results] == ["unused", None, "legacy"]
    assert lint_settings(tmp_path / "nowhere").fail_on == "error"  # no pyproject: the defaults


@pytest.mark.parametrize("lint, message", [
    ('allow = [{rule = "drop-column"}]', "give a reason"),
    ('allow = [{rule = "drop-column", reason = "x", table = "users"}]', "unknown key"),
    ('fail_on = "fatal"', "choose from"),
    ('failon = "error"', "unknown key"),
    ('disable = ["drop-colum"]', "did you mean"),
    ('enable = ["drop-column"]', "style rules"),
])
def test_bad_pyproject_lint_settings_are_config_errors(tmp_path: Path, lint: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        lint_settings(write_pyproject(tmp_path, lint))


# -- catalogue ---------------------------------------------------------------------------------------------------

def test_explain_and_list_rules_carry_why_and_safer() -> None:
    rules_by_name = all_rules()
    assert {"drop-column", "table-rewrite", "no-downgrade", "offline-sql-failed"} <= set(rules_by_name)
    for name, rule in rules_by_name.items():
        text = explain(name)
        assert rule.why.split()[0] in text and "Safer:" in text and rule.safer.split()[-1] in text, name
    assert "ban-drop-column" in explain("drop-column")  # which squawk rule finds it on PostgreSQL
    listing = list_rules()
    assert "index-without-concurrently" in listing and "require-concurrent-index-creation" in listing
    assert "prefer-robust-stmts" in listing.split("off by default")[1]
    with pytest.raises(ConfigError, match="did you mean drop-column"):
        explain("drop-colum")
    with pytest.raises(ConfigError, match="style rules"):
        explain("prefer-text-field")


def test_a_squawk_that_does_not_run_is_a_config_error_not_a_silent_skip(tmp_path: Path, monkeypatch) -> None:
    from harness.lint import squawk

    broken = tmp_path / "squawk"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setenv("SQUAWK", str(broken))
    squawk.squawk_binary.cache_clear()
    squawk.known_rules.cache_clear()
    try:
        with pytest.raises(ConfigError, match="does not run.*pip install 'squawk-cli"):
            sql_findings("postgresql", "r1", "ALTER TABLE users DROP COLUMN name;\n", None)
        assert sql_findings("mysql", "r1", "ALTER TABLE users DROP COLUMN name;\n", None)  # others need no squawk
    finally:
        squawk.squawk_binary.cache_clear()
        squawk.known_rules.cache_clear()
