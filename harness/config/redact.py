"""Keep passwords out of everything the harness prints or writes.

SQLAlchemy (to parse a URL) is imported when a URL is first read, not with this module: :func:`redact` is part of
the worker launcher, which a command uses before it imports SQLAlchemy (its preflight starts meanwhile)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine.url import URL


def make_url(url: str | URL) -> URL:
    from sqlalchemy.engine.url import make_url as parse

    return parse(url)


def url_text(url: Any, hide_password: bool) -> str:
    from ..versions import url_text as text

    return text(url, hide_password)


def safe_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***``: the only form of a URL the harness ever shows."""
    try:
        return url_text(make_url(url), hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: show nothing of it
        return "<unparseable url>"


def secrets_of(*urls: str | URL | None) -> list[str]:
    """The passwords inside ``urls`` (plain and URL-encoded), longest first, for :func:`redact`."""
    found: set[str] = set()
    for url in urls:
        if not url:
            continue
        try:
            password = make_url(url).password
        except Exception:
            continue
        if password:
            found.add(str(password))
            encoded = url_text(make_url(url), hide_password=False)
            # the encoded spelling sits between ':' and '@' in the rendered URL
            head = encoded.split("@", 1)[0]
            found.add(head.rsplit(":", 1)[-1])
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
