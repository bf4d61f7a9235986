"""Values for generated rows, one type at a time: what :func:`harness.datagen.fill_database` inserts.

Every value is a function of the row serial ``k`` (injective in ``k`` for unique columns) and of a seeded
``random.Random``; the only dialect quirks of the generator are in :func:`_dialect_kind`.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from ..versions import UUID_TYPES

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_EPOCH = dt.datetime(2020, 1, 1)


class _Exhausted(Exception):
    """The column's type has no further distinct value for this row serial; larger serials will not help."""


def _value(type_: Any, position: int, k: int, rng: random.Random, salt: int, *, unique: bool,
           alternate: bool) -> Any:
    """A value of ``type_`` for row serial ``k``: injective in ``k`` when ``unique``. Default values are positive
    numbers and non-empty strings (what simple CHECKs ask for); ``alternate`` values are small numbers increasing
    with the column position (``low <= high`` CHECKs) and strings that are valid JSON (``json_valid`` CHECKs)."""
    kind = _dialect_kind(type_) or _kind(type_)
    ordinal = k * 32 + position  # temporal values increase with column position: start < end CHECKs hold
    if kind == "bool":
        return bool(k % 2) if unique else (True if alternate else rng.random() < 0.5)
    if kind == "int":
        return _number(1, _int_max(type_), position, k, rng, unique=unique, alternate=alternate)
    if kind == "float":
        return _number(100, 10 ** 9, position, k, rng, unique=unique, alternate=alternate) / 100
    if kind == "numeric":
        scale = type_.scale if type_.scale is not None else (0 if type_.precision else 2)
        top = 10 ** (type_.precision or 12) - 1  # in units of 10**-scale
        units = _number(10 ** scale, top, position, k, rng, unique=unique, alternate=alternate)
        return Decimal(units).scaleb(-scale)
    if kind == "datetime":
        value = _EPOCH + dt.timedelta(minutes=ordinal)
        return value.replace(tzinfo=dt.timezone.utc) if getattr(type_, "timezone", False) else value
    if kind == "date":
        return (_EPOCH + dt.timedelta(days=ordinal)).date()
    if kind == "time":
        return (_EPOCH + dt.timedelta(seconds=_within(k if unique else ordinal % 86400, 86399))).time()
    if kind == "interval":
        return dt.timedelta(minutes=ordinal + 1)
    if kind in ("json", "json_text"):
        doc = {"k": k, "tag": rng.choice(_WORDS)}
        return doc if kind == "json" else json.dumps(doc)
    if kind in ("uuid", "uuid_text"):
        value = uuid.UUID(int=(salt << 64) | k, version=4)
        if kind == "uuid_text":
            return value.hex if type_.length == 32 else str(value)
        return value if getattr(type_, "as_uuid", True) else str(value)
    if kind == "binary":
        width = min(type_.length or 8, 8)
        return _within(k, 256 ** width - 1).to_bytes(width, "big") if unique else rng.randbytes(width)
    if kind == "array":
        return [_value(type_.item_type, position, k, rng, salt, unique=unique, alternate=alternate)]
    if kind == "year":
        return 1901 + _within(k if unique else k % 100, 254)
    if kind == "set":
        return type_.values[k % len(type_.values)] if type_.values else ""
    if kind == "bit":
        top = 2 ** (type_.length or 1) - 1
        return _within(k, top) if unique else rng.randint(0, top)
    if kind in ("inet", "macaddr"):
        low, high = divmod(_within(k, 65535), 256)
        return f"10.0.{low}.{high}" if kind == "inet" else f"02:00:00:00:{low:02x}:{high:02x}"
    return _string(getattr(type_, "length", None), kind == "text", k, rng, unique=unique, alternate=alternate)


def _number(one: int, top: int, position: int, k: int, rng: random.Random, *, unique: bool,
            alternate: bool) -> int:
    """A positive integer count of units (``one`` units make 1). Unique: the serial itself, so it can run out.
    Otherwise the value grows with the column position (``low <= high`` CHECKs hold when declared in that
    order) with a random part by default, or is exactly ``position + 1`` as the alternate; clamped to ``top``."""
    if unique:
        return _within(k + 1, top)
    value = (position + 1) * one if alternate else position * 100 * one + rng.randint(1, 99 * one)
    return value if value <= top else rng.randint(1, top)


def _string(length: int | None, long: bool, k: int, rng: random.Random, *, unique: bool, alternate: bool) -> str:
    """Lowercase ASCII without trailing spaces: MySQL's default collations compare case- and pad-insensitively,
    so anything else could collide in a unique index although Python sees two different strings."""
    token = _base36(k)
    if alternate:
        candidates = [json.dumps({"v": k + 1}), str(k + 1)]
    elif unique:
        candidates = [f"{rng.choice(_WORDS)}-{token}", f"u{token}", token]
    else:
        words = rng.sample(_WORDS, 6 if long else 1)
        text = " ".join(words) + f" {k}"
        candidates = [text if length is None else text[:length].rstrip() or token[:length]]
    for value in candidates:
        if length is None or len(value) <= length:
            return value
    raise _Exhausted


def _kind(type_: Any) -> str:
    """Generic classification of a reflected type; order matters (Boolean before Integer, Float before
    Numeric, Enum is handled by choices, CHAR(32)/CHAR(36) hold SQLAlchemy's Uuid where there is no native one)."""
    ordered = ((sa.Boolean, "bool"), (sa.Integer, "int"), (sa.Float, "float"), (sa.Numeric, "numeric"),
               (sa.DateTime, "datetime"), (sa.Date, "date"), (sa.Time, "time"), (sa.Interval, "interval"),
               (sa.JSON, "json"), (UUID_TYPES, "uuid"), (sa.ARRAY, "array"), (sa.LargeBinary, "binary"),
               (sa.Text, "text"))
    for cls, kind in ordered:
        if isinstance(type_, cls):
            return kind
    if isinstance(type_, sa.CHAR) and type_.length in (32, 36):
        return "uuid_text"
    if isinstance(type_, sa.String):
        return "string"
    try:
        python_type = type_.python_type
    except NotImplementedError:
        return "unknown"  # a short string; if the database refuses it the table is reported as skipped
    return {dt.timedelta: "interval", bytes: "binary", list: "array", uuid.UUID: "uuid"}.get(python_type, "unknown")


def _dialect_kind(type_: Any) -> str | None:
    """The one place for dialect quirks. MySQL/MariaDB: BOOL reflects as TINYINT(1); MariaDB's JSON reflects as
    LONGTEXT with the utf8mb4_bin collation (its implicit ``json_valid`` CHECK is not reflected, so it needs JSON
    text); YEAR, SET and BIT have no generic counterpart. PostgreSQL: network types refuse arbitrary strings."""
    if isinstance(type_, (postgresql.INET, postgresql.CIDR)):
        return "inet"
    if isinstance(type_, postgresql.MACADDR):
        return "macaddr"
    if isinstance(type_, mysql.TINYINT) and type_.display_width == 1:
        return "bool"
    if isinstance(type_, mysql.LONGTEXT) and (type_.collation or "").endswith("_bin"):
        return "json_text"
    if isinstance(type_, mysql.BIT):
        return "bit"
    if isinstance(type_, mysql.YEAR):
        return "year"
    if isinstance(type_, mysql.SET):
        return "set"
    return None


def _int_max(type_: Any) -> int:
    ranges = ((mysql.TINYINT, 127), (mysql.MEDIUMINT, 2 ** 23 - 1), (sa.SmallInteger, 2 ** 15 - 1),
              (sa.BigInteger, 2 ** 63 - 1))
    return next((top for cls, top in ranges if isinstance(type_, cls)), 2 ** 31 - 1)


def _within(value: int, top: int) -> int:
    if value > top:
        raise _Exhausted
    return value


def _base36(n: int) -> str:
    digits = ""
    while True:
        n, r = divmod(n, 36)
        digits = _BASE36[r] + digits
        if not n:
            return digits
