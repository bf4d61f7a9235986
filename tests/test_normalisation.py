"""One test per dialect normalisation rule: the spelling each database really reports (seen on PostgreSQL 15,
MariaDB 10.11 and SQLite 3.40) against what the model renders. The tricky-model test in test_schema.py shows the
same rules on the real databases."""
from __future__ import annotations

import pytest

from harness.backends import get_backend

pg, my, lite = get_backend("postgresql"), get_backend("mysql"), get_backend("sqlite")


@pytest.mark.parametrize("backend", [pg, my, lite], ids=["postgresql", "mysql", "sqlite"])
def test_quotes_and_parentheses_around_a_literal(backend) -> None:
    # SQLite reflects server_default="0" as '0'; MariaDB as 0; PostgreSQL with a cast (below)
    assert backend.normalize_default("'0'") == backend.normalize_default("0") == backend.normalize_default("(0)")


@pytest.mark.parametrize("backend", [pg, my, lite], ids=["postgresql", "mysql", "sqlite"])
def test_now_and_current_timestamp_are_one_default(backend) -> None:
    spellings = ["now()", "CURRENT_TIMESTAMP", "current_timestamp()", "(CURRENT_TIMESTAMP)"]
    assert {backend.normalize_default(s) for s in spellings} == {"current_timestamp"}


def test_numeric_defaults_compare_by_value() -> None:
    # MariaDB writes a NUMERIC(10,2) default '0' back as 0.00
    assert my.normalize_default("0.00") == my.normalize_default("'0'") == "0"
    assert my.normalize_default("10") == "10" and my.normalize_default("1.50") == "1.5"


def test_postgresql_casts_on_defaults() -> None:
    assert pg.normalize_default("'0'::integer") == "0"
    assert pg.normalize_default("'draft'::post_status") == "draft"
    assert pg.normalize_default("'x'::character varying(20)") == "x"
    assert pg.normalize_default("'{}'::jsonb[]") == "{}"
    assert pg.normalize_default("false") == "false"


def test_postgresql_keeps_different_values_different() -> None:
    assert pg.normalize_default("'1'::integer") != pg.normalize_default("0")
    assert pg.normalize_default("'draft'::post_status") != pg.normalize_default("'published'")


def test_mysql_booleans_are_tinyints() -> None:
    # server_default=sa.true() / sa.false() is stored and reflected as 1 / 0
    assert my.normalize_default("true") == my.normalize_default("1") == "1"
    assert my.normalize_default("false") == my.normalize_default("0") == "0"


def test_mysql_restrict_is_no_action() -> None:
    assert my.same_fk_action(None, "RESTRICT") and my.same_fk_action("NO ACTION", "RESTRICT")
    assert not my.same_fk_action("CASCADE", "RESTRICT")
    # PostgreSQL keeps them apart (RESTRICT is not deferrable)
    assert pg.same_fk_action(None, "NO ACTION") and not pg.same_fk_action(None, "RESTRICT")


def test_mariadb_json_valid_check_is_implicit() -> None:
    assert my.is_implicit_check("attrs", "json_valid(`attrs`)")
    assert not my.is_implicit_check("ck_things_price_positive", "`price` >= 0")
    assert not pg.is_implicit_check("attrs", "json_valid(attrs)")


def test_sqlite_sequence_is_ignored_by_default_with_a_reason() -> None:
    assert "AUTOINCREMENT" in lite.implicit_tables["sqlite_sequence"]
    assert pg.implicit_tables == {} and my.implicit_tables == {}
