"""The interface every dialect backend implements, and the logic PostgreSQL and MySQL share.

A *backend* knows one dialect. Its :meth:`Backend.server` provides a :class:`Server` — a throwaway container, an
existing server given by URL, or (SQLite) a temporary directory — and the server hands out scratch databases,
each created for one worker and dropped afterwards. The harness never runs migrations anywhere else: a URL given
by the user is only used to create and drop databases named ``mharness_<run id>_<n>``.
"""
from __future__ import annotations

import itertools
import os
import secrets
import threading
from decimal import Decimal, InvalidOperation
import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.pool import NullPool

from ..versions import with_tmpfs
from ..config import DatabaseSettings
from ..errors import DatabaseUnavailable
from ..config.redact import redact, safe_url, secrets_of
from .names import CONTAINER_LABEL, SCRATCH_PREFIX, new_run_id  # noqa: F401 - imported from here too
from .probe import container_state, log_line_with, remove_container



@dataclass(frozen=True)
class Catalogue:
    """What a schema snapshot reads of the catalogue besides the reflection of changed tables
    (:meth:`Backend.catalogue`): the tables' fingerprints, the other schema objects by kind and, where the same
    round trip gives exactly the Inspector's ``get_table_names()``, the table names (``None``: ask the Inspector)."""

    fingerprints: dict[str, str] | None
    objects: dict[str, list[str]]
    tables: list[str] | None = None


def first_line(exc: BaseException, hide: list[str] | None = None) -> str:
    """The first non-empty line of an exception's text, passwords removed: what a one-line reason shows."""
    text = str(exc).strip() or type(exc).__name__
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), text)
    return redact(line, hide or [])


class Server(ABC):
    """Somewhere scratch databases can be created: ``kind`` is ``file``, ``container`` or ``url``."""

    kind: str
    server_version: str
    #: what could not be removed (a dead server's scratch database, a container Docker would not remove), for
    #: the report and ``clean --run-id``
    leftovers: list[str]
    #: a server given by URL that went away was waited for and did not come back in time (it is not waited for
    #: again, to drop what it kept)
    waited_in_vain: bool = False

    @abstractmethod
    def scratch_database(self) -> AbstractContextManager[str]:
        """Create a fresh, uniquely named database; yield its URL (with password); drop it on exit (a drop that
        fails is recorded in :attr:`leftovers`, never raised)."""

    def renew(self, url: str, template: str | None = None) -> bool:
        """Make the scratch database at ``url`` fresh again, under the same name (the app a worker loaded on it
        keeps pointing at it): dropped and created (a copy of ``template``, one :meth:`keep_as_template` made, when
        given). False when it could not be dropped (it is then one of :attr:`leftovers`, and the caller takes a new
        one); :class:`DatabaseUnavailable` when it cannot be made."""
        raise NotImplementedError  # pragma: no cover - every server kind implements it

    def prepare_renewal(self, template: str | None = None) -> None:
        """Start making, in the background, what the next :meth:`renew` will need (a caller that expects another
        session says so while the current one runs); nothing where renewing is cheap."""

    def keep_as_template(self, url: str) -> str | None:
        """Copy the scratch database at ``url`` (a session just brought it to where every later session starts;
        nobody is connected to it) into a new scratch database of this run, the template :meth:`renew` makes later
        ones from: an exact copy (tables, rows, sequences and AUTO_INCREMENT counters, views, triggers, functions,
        types), as if the same revisions had been applied to it. Its name, or ``None`` where this server cannot
        copy a database exactly (the sessions then apply the revisions themselves, as without a template)."""
        return None

    def drop_template(self, template: str) -> None:
        """Drop a template :meth:`keep_as_template` made (one that cannot be dropped is one of :attr:`leftovers`)."""

    def probe(self) -> str | None:
        """Why the server cannot be used any more ("the container had exited with code 137"), or ``None`` while
        it still answers. Asked after a failure: a server's death is an environment fault, not a verdict."""
        return None

    def sweep(self) -> None:
        """Try again to remove what could not be removed (the server answers again)."""


@dataclass(frozen=True)
class TableSize:
    """One table's size as the catalogue tells it: ``rows`` ``None`` when not known (never analysed),
    ``rows_estimated`` when the figure comes from statistics rather than a count; ``bytes`` with its indexes."""

    rows: int | None
    bytes: int | None
    rows_estimated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "bytes": self.bytes, "rows_estimated": self.rows_estimated}


_TIMESTAMP_SYNONYMS = {"now()", "current_timestamp", "current_timestamp()", "localtimestamp", "transaction_timestamp()"}


class Backend(ABC):
    """One dialect: how to provide its servers and scratch databases, and what its reflection legitimately
    reports differently from the models. The quirk hooks below do the generic thing; a dialect overrides only
    what differs, with a comment naming the behaviour it absorbs."""

    name: ClassVar[str]
    #: tables a database creates by itself, not the migrations (ignored by default, with this reason)
    implicit_tables: ClassVar[dict[str, str]] = {}
    #: what the driver says (lower case) when the server went away or cannot be reached: an environment fault,
    #: never the fault of the migration that was running. Dialects add their own words.
    server_gone_markers: ClassVar[tuple[str, ...]] = (
        "connection refused", "connection reset by peer", "broken pipe", "connection timed out", "no route to host")
    #: what it says to a new connection while it shuts down or starts: not yet the answer a probe waits for
    settling_markers: ClassVar[tuple[str, ...]] = ()
    #: what it says when the server's disk is full
    disk_full_markers: ClassVar[tuple[str, ...]] = ("no space left on device", "disk full")
    #: how this database says a statement's table does not exist (SQLAlchemy's own, from a batch's reflection,
    #: on every database): a chain that assumes tables ``create_all`` made fails with one of these
    missing_table_markers: ClassVar[tuple[str, ...]] = ("NoSuchTableError",)

    def environment_fault(self, message: str) -> tuple[str, str] | None:
        """``("server_gone" | "disk_full", the words found)`` when ``message`` (a step's or a check's error) is the
        database saying it went away or ran out of disk, else ``None``."""
        lowered = message.lower()
        for kind, markers in (("disk_full", self.disk_full_markers), ("server_gone", self.server_gone_markers)):
            found = next((m for m in markers if m in lowered), None)
            if found:
                return kind, found
        return None

    @abstractmethod
    def server(self, settings: DatabaseSettings, run_id: str) -> AbstractContextManager[Server]:
        """Provide a server for ``settings``; raise :class:`DatabaseUnavailable` with the reason if it cannot."""

    # -- schema quirks (used inside workers) ---------------------------------------------------------------
    def schema_objects(self, conn: Connection) -> dict[str, list[str]]:
        """Non-table objects a chain can create and forget to drop, by kind (views here; dialects add more)."""
        return {"view": list(sa.inspect(conn).get_view_names())}

    def normalize_default(self, text: str | None) -> str | None:
        """A canonical spelling of a server default, so equal defaults compare equal across dialects.

        Generic part: outer parentheses and whitespace, quotes around plain literals, case of keywords, and
        the SQL-standard synonyms of "now" (``now()``, ``CURRENT_TIMESTAMP``).
        """
        if text is None:
            return None
        value = " ".join(str(text).split())
        while value.startswith("(") and value.endswith(")") and _balanced(value[1:-1]):
            value = value[1:-1].strip()
        if len(value) >= 2 and value[0] == value[-1] == "'" and "'" not in value[1:-1]:
            value = value[1:-1]
        if value.lower() in _TIMESTAMP_SYNONYMS:
            return "current_timestamp"
        if value.lower() in ("true", "false", "null"):
            return value.lower()
        # A numeric literal compares by value: MariaDB writes a NUMERIC(10,2) default '0' back as 0.00.
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value
        return format(number.normalize(), "f") if number.is_finite() else value

    #: the keys of :meth:`table_fingerprints` are exactly the tables the snapshot and the data check list, so
    #: neither asks the Inspector's ``get_table_names()`` (a round trip, twice per step of the data check)
    fingerprints_list_tables: ClassVar[bool] = False
    #: the fingerprints are the catalogue's own normalized text (not a statement as it was written), so a table
    #: the Inspector reflects alike in two states of the database nearly always has the same fingerprint in both:
    #: the stairway then compares two states by their :meth:`catalogue` alone and reflects only when they differ
    #: (:func:`harness.checks.chain.check_stairway`). SQLite keeps the text each ``CREATE TABLE`` was written in, and
    #: a table that batch mode made again has another text with the same reflection.
    fingerprints_are_canonical: ClassVar[bool] = False

    def table_fingerprints(self, conn: Connection) -> dict[str, str] | None:
        """A text per table that changes whenever anything the Inspector reflects of it changes (from one catalogue
        query where the dialect allows), so an unchanged table's reflection can be reused between two snapshots.
        ``None``: no fingerprint, reflect every table every time."""
        return None

    def catalogue(self, conn: Connection) -> Catalogue:
        """:meth:`table_fingerprints` and :meth:`schema_objects` together, in as few round trips as the dialect
        allows: the stairway takes two snapshots per revision, and on a long chain the catalogue round trips
        were most of its time. Dialects override it to read both at once; the result must equal the two calls'."""
        fingerprints = self.table_fingerprints(conn)
        tables = sorted(fingerprints) if fingerprints is not None and self.fingerprints_list_tables else None
        return Catalogue(fingerprints, self.schema_objects(conn), tables)

    def session_settings(self, lock_timeout_s: float) -> list[str]:
        """Statements run on every connection a worker's app opens: how long a step may wait for a lock
        before the database gives up with an error that names the lock (instead of hanging until the step
        time limit)."""
        return []

    def same_fk_action(self, model: str | None, database: str | None) -> bool:
        """Whether two ON DELETE / ON UPDATE actions mean the same (no action given is NO ACTION)."""
        return (model or "NO ACTION").upper() == (database or "NO ACTION").upper()

    def is_implicit_check(self, name: str | None, sqltext: str) -> bool:
        """A CHECK constraint the database adds by itself (not in the models, not made by a migration)."""
        return False

    # -- rehearse: reading a production database without changing it ------------------------------------------
    #: how :meth:`read_only_engine` keeps the session read-only, in words (the rehearse report says it)
    read_only_how: ClassVar[str] = "no read-only session: the harness's own statement guard only"

    def read_only_engine(self, url: URL) -> Engine:
        """An engine whose every session the database itself keeps read-only (``rehearse --from``): a write
        statement fails there even if the harness had a bug. Dialects say how (:meth:`read_only_connect_args`,
        :meth:`read_only_session`, SQLite overrides the whole engine)."""
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=self.read_only_connect_args())
        statements = self.read_only_session()

        def on_connect(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            cursor.close()

        sa.event.listen(engine, "connect", on_connect)
        return engine

    def read_only_connect_args(self) -> dict[str, Any]:
        """Driver arguments that make the session read-only from its first statement (none by default)."""
        return {}

    def read_only_session(self) -> list[str]:
        """Statements run on each new production connection, before anything else, that make it read-only."""
        return []

    def begin_read_only(self) -> str | None:
        """The statement that opens the one read-only transaction every production read happens in (one
        snapshot: the revision, the schema and the sampled rows agree with each other)."""
        return None

    def table_sizes(self, conn: Connection) -> dict[str, TableSize]:
        """Row count and size of every table of the connected database, from the catalogue (cheap, read-only, no
        full scan where the dialect keeps statistics): what the lock-duration estimates are scaled to. The
        generic answer: names only, sizes unknown."""
        return {name: TableSize(None, None, True) for name in sa.inspect(conn).get_table_names()}

    def image_for_version(self, version_info: tuple[int, ...], server_version: str) -> str | None:
        """The container image of the same major version as a production server (``None``: no container)."""
        return None

    def copyable_default(self, text: str | None) -> str | None:
        """A reflected server default as it can be recreated in an empty database; ``None`` drops it (the
        database makes it again by itself, e.g. PostgreSQL's SERIAL ``nextval(...)``)."""
        return text

    def after_rows_copied(self, conn: Connection, table: sa.Table) -> None:
        """Called after rows with explicit keys were copied into ``table`` (counters the database keeps)."""

    # -- rehearse: how a step meets production's existing rows (harness.rehearse.proofs) --------------------
    #: ``ADD COLUMN ... NOT NULL`` without a default on a table with rows: the database fills the type's implicit
    #: default instead of failing
    fills_implicit_default: ClassVar[bool] = False
    #: a stored value longer than a column's new length (or out of a smaller type's range) makes the change fail
    enforces_type_limits: ClassVar[bool] = True
    #: ``ADD FOREIGN KEY`` checks the rows already in the table
    checks_existing_foreign_keys: ClassVar[bool] = True
    #: ``CAST(x AS type)`` in a SELECT raises on a value that does not convert (so a read can try a cast)
    cast_raises: ClassVar[bool] = False

    def not_matching(self, column: Any, pattern: str) -> Any:
        """A SQL condition true where ``column``'s text does not match the regular expression ``pattern``;
        ``None`` where the dialect has no regular expressions in SQL."""
        return None


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


class ServerBackend(Backend):
    """A client/server dialect: a testcontainers container from an image, or an existing server by URL."""

    #: the DBAPI driver the harness installs; a URL without ``+driver`` gets it (SQLAlchemy 2.1 would pick
    #: psycopg 3 for ``postgresql://``, which the harness does not depend on)
    default_driver: ClassVar[str]
    #: database to connect to when a URL names none
    admin_database: ClassVar[str | None] = None
    #: a throwaway container keeps nothing, so it runs without durability: the server command with its options
    #: (fsync off…) and tmpfs mounts for its data directory. Never applied to a server given by URL;
    #: ``HARNESS_DURABLE_CONTAINERS=1`` keeps the image's defaults.
    fast_command: ClassVar[str | None] = None
    fast_tmpfs: ClassVar[tuple[str, ...]] = ()

    # -- dialect hooks -------------------------------------------------------------------------------------
    @abstractmethod
    def make_container(self, image: str, password: str) -> Any:
        """A configured, not yet started testcontainers container for ``image``."""

    @abstractmethod
    def container_url(self, container: Any, password: str) -> str:
        """The admin URL of a started container."""

    @abstractmethod
    def create_database(self, conn: Connection, name: str) -> None:
        """CREATE DATABASE ``name``."""

    @abstractmethod
    def drop_database(self, conn: Connection, name: str) -> None:
        """Drop ``name`` even if sessions are still connected to it."""

    #: renaming a database is cheap while making one is not (PostgreSQL copies a template: 0.4-1 s; MySQL copies
    #: a ``--since`` template table by table): :meth:`SqlServer.renew` then renames a database made in the background
    renames_databases: ClassVar[bool] = False

    def rename_database(self, conn: Connection, name: str, new_name: str) -> bool:
        """Give database ``name`` the name ``new_name``, everything in it as it is. False where this one cannot be
        renamed so (someone is connected to it; on MySQL, it holds more than tables): ``new_name`` does not exist
        then, and the caller drops ``name`` instead."""
        raise NotImplementedError  # pragma: no cover - only called when renames_databases is set

    #: the server can make an exact copy of a database (:meth:`copy_database`); without it a ``--since`` run
    #: applies the old revisions in every session
    copies_databases: ClassVar[bool] = False

    def copy_database(self, conn: Connection, name: str, template: str) -> bool:
        """Create database ``name`` as an exact copy of ``template`` (nobody is connected to it): every object,
        row, sequence and counter as it is there. False (nothing created) where ``template`` holds something this
        dialect cannot copy exactly."""
        raise NotImplementedError  # pragma: no cover - only called when copies_databases is set

    @abstractmethod
    def list_databases(self, conn: Connection) -> list[str]:
        """Names of all databases on the server."""

    @abstractmethod
    def describe_version(self, conn: Connection) -> str:
        """A short product and version, e.g. ``PostgreSQL 15.4`` or ``MariaDB 10.11.6``."""

    # -- shared logic --------------------------------------------------------------------------------------
    @contextmanager
    def server(self, settings: DatabaseSettings, run_id: str) -> Iterator[Server]:
        if settings.url:
            engine = self.connect_admin(settings.url)
            try:
                server = self._checked(SqlServer(self, engine, "url", run_id), settings)
                yield server
                server.sweep()
            finally:
                engine.dispose()
            return
        leftovers: list[str] = []
        with self._container(settings.image or "", run_id, leftovers, settings.tmpfs_size) as (url, container):
            # a container's server refuses connections while it starts: retried, bounded (30 s)
            engine = self._connect(make_url(url), kind="container", attempts=30)
            try:
                yield self._checked(SqlServer(self, engine, "container", run_id, container, leftovers), settings)
            finally:
                engine.dispose()

    def _checked(self, server: SqlServer, settings: DatabaseSettings) -> SqlServer:
        """Refuse a server older than the app supports (``min_version``) before any database is made on it."""
        if settings.min_version and server.version_info < settings.min_version:
            wanted = ".".join(map(str, settings.min_version))
            raise DatabaseUnavailable(self.name, f"the server is {server.server_version}, older than {wanted}, the "
                                                 f"oldest the app supports (min_version)")
        return server

    def connect_admin(self, raw_url: str) -> Engine:
        """An AUTOCOMMIT engine on the server at ``raw_url`` (the harness's driver pinned, connect timeout set),
        checked with one connection; :class:`DatabaseUnavailable` with the reason if it cannot connect."""
        return self._connect(self._admin_url(raw_url), kind="url", attempts=1)

    def _admin_url(self, raw: str) -> URL:
        try:
            url = make_url(raw)
        except Exception as exc:
            raise DatabaseUnavailable(self.name, f"cannot parse the server URL: {first_line(exc, [raw])}") from exc
        backend = url.get_backend_name()
        if backend != self.name and not (self.name == "mysql" and backend == "mariadb"):
            raise DatabaseUnavailable(self.name, f"the {self.name} URL {safe_url(url)} is for {backend}")
        if "+" not in url.drivername:
            url = url.set(drivername=f"{self.name}+{self.default_driver}")
        if url.database is None and self.admin_database:
            url = url.set(database=self.admin_database)
        return url

    def _connect(self, url: URL, *, kind: str, attempts: int) -> Engine:
        try:
            engine = sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                                      connect_args=self.connect_args())
        except Exception as exc:  # the URL's driver is not installed, or an option is unknown
            raise DatabaseUnavailable(self.name, f"cannot use {safe_url(url)}: {first_line(exc)}") from exc
        for attempt in range(attempts):
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                return engine
            except sa.exc.DBAPIError as exc:
                if attempt + 1 >= attempts:
                    engine.dispose()
                    reason = first_line(exc.orig or exc, secrets_of(url))
                    raise DatabaseUnavailable(
                        self.name, f"cannot connect to {safe_url(url)} ({kind}): {reason}") from exc
                time.sleep(1)
        raise AssertionError("unreachable")

    def connect_args(self) -> dict[str, Any]:
        """Driver arguments for the admin connection (a connect timeout, so a dead host fails fast)."""
        return {"connect_timeout": 10}

    @contextmanager
    def _container(self, image: str, run_id: str, leftovers: list[str],
                   tmpfs_size: str | None = None) -> Iterator[tuple[str, Any]]:
        password = secrets.token_urlsafe(12)
        try:
            container = self.make_container(image, password)
            kwargs: dict[str, Any] = {"labels": {CONTAINER_LABEL: run_id}}
            if os.environ.get("HARNESS_DURABLE_CONTAINERS", "") in ("", "0"):
                for path in self.fast_tmpfs:
                    with_tmpfs(container, path, kwargs, tmpfs_size)
                if self.fast_command:
                    container.with_command(self.fast_command)
            container.with_kwargs(**kwargs)
        except Exception as exc:  # testcontainers connects to Docker here already
            raise DatabaseUnavailable(self.name, _docker_reason(exc, image, self.name)) from exc
        try:
            container.start()
        except Exception as exc:
            self._remove_quietly(container)
            raise DatabaseUnavailable(self.name, _docker_reason(exc, image, self.name)) from exc
        except BaseException:  # interrupted while starting: the container may exist already
            self._remove_quietly(container)
            raise
        try:
            yield self.container_url(container, password), container
        finally:
            problem = remove_container(container)
            if problem:  # labelled with the run id: ``clean --run-id`` removes it once Docker answers again
                name = getattr(getattr(container, "_container", None), "name", "?")
                leftovers.append(f"container {name} ({image}): {problem}")

    @staticmethod
    def _remove_quietly(container: Any) -> None:
        remove_container(container)


#: what a user's image must be, in the advice for a missing one
_IMAGE_KIND = {"postgresql": "PostgreSQL", "mysql": "MySQL or MariaDB"}

_NOT_PULLABLE = ("not found", "pull access denied", "manifest unknown", "no such image", "no such host",
                 "dial tcp", "i/o timeout", "images/create", "toomanyrequests", "unauthorized")


def _docker_reason(exc: BaseException, image: str, dialect: str) -> str:
    """Turn a Docker / testcontainers failure into one line that says what to do (Docker's own text is long,
    e.g. ``500 Server Error for http+docker://…/images/create…: Get "https://registry…": dial tcp: lookup …``)."""
    text = first_line(exc)
    lowered = repr(exc).lower() + text.lower()
    variable = f"HARNESS_{dialect.upper()}_IMAGE"
    if "ryuk" in lowered:
        return ("testcontainers' Ryuk reaper image could not be pulled; set TESTCONTAINERS_RYUK_DISABLED=true "
                "(the harness removes its own containers) or make the image available")
    if "fetching server api version" in lowered or "connection refused" in lowered or "no such file" in lowered:
        return ("no Docker engine answers (is dockerd running?); start one, or give a server URL with "
                "HARNESS_POSTGRESQL_URL / HARNESS_MYSQL_URL, or pass --skip-unavailable")
    if any(marker in lowered for marker in _NOT_PULLABLE):
        offline = any(m in lowered for m in ("no such host", "dial tcp", "i/o timeout"))
        why = "no registry is reachable" if offline else "the registry does not have it"
        return (f"image {image!r} is not available locally and could not be pulled ({why}); `docker pull "
                f"{image}` where a registry answers (or `docker load` an image saved there), or set {variable} to "
                f"an image this Docker engine has (`docker images`: any {_IMAGE_KIND.get(dialect, dialect)} image "
                f"works), or give a server you run: HARNESS_{dialect.upper()}_URL")
    return f"container from image {image!r} did not start: {text}"


class _Spare:
    """A scratch database made in a thread of its own (:meth:`SqlServer.prepare_renewal`)."""

    #: how long :meth:`wait` waits for the CREATE (a frozen server never answers: renew then finds out itself)
    WAIT_S = 60.0

    def __init__(self, server: SqlServer, name: str, template: str | None = None) -> None:
        self.server, self.name, self.template = server, name, template
        self.made = False
        self._thread = threading.Thread(target=self._make, name=f"spare-{name}", daemon=True)
        self._thread.start()

    def _make(self) -> None:
        try:
            self.made = self.server.make_database(self.name, self.template)
        except Exception:  # noqa: BLE001 - renew makes its database itself, and says why it cannot
            pass

    def wait(self) -> bool:
        """Whether it was made (waiting for the CREATE to end)."""
        self._thread.join(self.WAIT_S)
        return self.made and not self._thread.is_alive()


class SqlServer(Server):
    """A PostgreSQL or MySQL server (container or URL) on which scratch databases are made and dropped."""

    def __init__(self, backend: ServerBackend, engine: Engine, kind: str, run_id: str, container: Any = None,
                 leftovers: list[str] | None = None) -> None:
        self.backend = backend
        self.engine = engine
        self.kind = kind
        self.run_id = run_id
        self.container = container  # the testcontainers container, for a throwaway server
        self.leftovers = leftovers if leftovers is not None else []
        self._undropped: list[str] = []  # scratch databases a failed drop left (tried again by sweep)
        self._numbers = itertools.count(1)
        self._spare: _Spare | None = None  # the next renew's database, being made (prepare_renewal)
        self._dropping: list[threading.Thread] = []  # databases renew set aside, being dropped
        self._templates: list[str] = []  # what keep_as_template made (dropped by drop_template, else at the end)
        with engine.connect() as conn:
            self.server_version = backend.describe_version(conn)
            self.version_info = tuple(int(p) for p in conn.dialect.server_version_info if isinstance(p, int))

    @property
    def admin_url(self) -> URL:
        return self.engine.url

    @contextmanager
    def scratch_database(self) -> Iterator[str]:
        name = f"{SCRATCH_PREFIX}{self.run_id}_{next(self._numbers)}"
        created = False
        try:
            self._create(name)
            created = True
            yield self.admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            self._discard_spare()
            for thread in self._dropping:
                thread.join(_Spare.WAIT_S)
            self._dropping.clear()
            for template in list(self._templates):
                self.drop_template(template)
            # also when interrupted mid-CREATE (the database may exist without ``created`` being set)
            self._drop(name, created)

    def renew(self, url: str, template: str | None = None) -> bool:
        name = make_url(url).database
        self._refuse_broken(name)
        spare = self._take_spare(template)
        if spare is None:
            if not self._drop(name, created=True):
                return False
            self._create_fresh(name, template)
            return True
        # The spare was made while the last session ran. The used database is renamed out of the way (nobody is
        # connected to it any more) and dropped in the background: PostgreSQL's DROP DATABASE waits for a
        # checkpoint, seconds on a busy server. The spare, renamed, is a database as fresh as a new one.
        retired = f"{SCRATCH_PREFIX}{self.run_id}_{next(self._numbers)}"
        if self._rename(name, retired):
            self._drop_later(retired)
        elif not self._drop(name, created=True):
            self._drop(spare, created=True)
            return False
        if not self._rename(spare, name):
            self._drop(spare, created=True)
            self._create_fresh(name, template)
        return True

    def _create_fresh(self, name: str, template: str | None) -> None:
        """:meth:`_create` for a session: a template kept by :meth:`keep_as_template` copied once and can be again;
        should it not, the session must not run on an empty database it takes for a copy (its verdicts would be
        about revisions it never applied), so that is :class:`DatabaseUnavailable`."""
        if not self._create(name, template):
            self._drop(name, created=False)
            raise DatabaseUnavailable(self.backend.name, f"cannot copy template {template} into scratch database "
                                                         f"{name} on {safe_url(self.admin_url)}")

    def keep_as_template(self, url: str) -> str | None:
        if not self.backend.copies_databases:
            return None
        template = f"{SCRATCH_PREFIX}{self.run_id}_{next(self._numbers)}"  # a scratch name: clean --run-id finds it
        self._templates.append(template)
        try:
            if self._create(template, make_url(url).database):
                return template
        except DatabaseUnavailable:
            pass
        self.drop_template(template)  # a copy that failed half-way may exist all the same
        return None

    def drop_template(self, template: str) -> None:
        if template in self._templates:
            self._templates.remove(template)
            self._drop(template, created=True)

    def _rename(self, name: str, new_name: str) -> bool:
        try:
            with self.engine.connect() as conn:
                return self.backend.rename_database(conn, name, new_name)
        except sa.exc.DBAPIError:  # someone is still connected to it (a worker that was killed): dropped instead
            return False

    def _drop_later(self, name: str) -> None:
        thread = threading.Thread(target=self._drop, args=(name, True), name=f"drop-{name}", daemon=True)
        thread.start()
        self._dropping.append(thread)

    def prepare_renewal(self, template: str | None = None) -> None:
        if self.backend.renames_databases and self._spare is None:
            self._spare = _Spare(self, f"{SCRATCH_PREFIX}{self.run_id}_{next(self._numbers)}", template)

    def _take_spare(self, template: str | None = None) -> str | None:
        """The spare database's name once it is made (from ``template``), else ``None`` (its making failed, or it
        was made from another template: renew makes one itself, and says why it cannot)."""
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        if spare.wait() and spare.template == template:
            return spare.name
        if spare.made:
            self._drop(spare.name, created=True)
            return None
        self._drop(spare.name, created=False)  # interrupted mid-CREATE, it may exist all the same
        return None

    def _discard_spare(self) -> None:
        template = self._spare.template if self._spare is not None else None  # the spare's own: its name is given
        name = self._take_spare(template)
        if name is not None:
            self._drop(name, created=True)

    def _refuse_broken(self, name: str) -> None:
        """:class:`DatabaseUnavailable` at once when Docker says the container exited or is paused: a paused
        server accepts a connection and never answers it (PyMySQL then waits for ever, psycopg2 for its connect
        timeout at each statement), so a frozen container is asked of Docker before its server is."""
        if self.container is None:
            return
        state = container_state(self.container)
        if state.broken:
            raise DatabaseUnavailable(
                self.backend.name, f"cannot create scratch database {name} on {safe_url(self.admin_url)}: {state.text}")

    def make_database(self, name: str, template: str | None = None) -> bool:
        """CREATE ``name``, or copy ``template`` into it; False (nothing created) when the backend cannot copy
        ``template`` exactly. Errors are the driver's: :meth:`_create` says what they mean, a spare ignores them."""
        with self.engine.connect() as conn:
            if template is None:
                self.backend.create_database(conn, name)
                return True
            return self.backend.copy_database(conn, name, template)

    def _create(self, name: str, template: str | None = None) -> bool:
        """Create ``name`` (a copy of ``template`` when given); False when ``template`` cannot be copied exactly."""
        self._refuse_broken(name)
        try:
            if not self.make_database(name, template):
                return False
        except sa.exc.DBAPIError as exc:
            reason = first_line(exc.orig or exc, secrets_of(self.engine.url))
            gone = self.probe()
            raise DatabaseUnavailable(
                self.backend.name, f"cannot create scratch database {name} on {safe_url(self.admin_url)}: {reason}"
                + (f"; {gone}" if gone else "")) from exc
        return True

    def _drop(self, name: str, created: bool) -> bool:
        """Drop scratch database ``name``; when the server cannot, remember it (never raised: the run's verdicts
        and reports come first). A container that is gone or frozen takes its databases with it."""
        if self.container is not None and container_state(self.container).broken:
            return True
        try:
            with self.engine.connect() as conn:
                self.backend.drop_database(conn, name)
        except sa.exc.DBAPIError as exc:
            if created and name not in self._undropped:
                self._undropped.append(name)
                self.leftovers.append(f"scratch database {name} on {safe_url(self.admin_url)}: "
                                      f"{first_line(exc.orig or exc, secrets_of(self.engine.url))}")
            return False
        return True

    def sweep(self) -> None:
        for name in list(self._undropped):
            if self._drop(name, created=False):
                self._undropped.remove(name)
                self.leftovers[:] = [x for x in self.leftovers if not x.startswith(f"scratch database {name} ")]

    def probe(self) -> str | None:
        docker = ""
        if self.container is not None:
            state = container_state(self.container)
            # a server whose disk filled up may crash and restart, its clients only see a dropped connection
            full = log_line_with(self.container, self.backend.disk_full_markers)
            if full or state.broken:
                return "; ".join(x for x in (state.text if state.broken else "", full and f"its log says: {full}") if x)
            docker = f"; {state.text}" if state.status == "unknown" else ""
        text = self._answer()
        deadline = time.monotonic() + 5.0
        while text and any(m in text.lower() for m in self.backend.settling_markers) and time.monotonic() < deadline:
            time.sleep(0.25)  # shutting down or starting: its next answer says which way it went
            text = self._answer()
        if text:
            found = self.backend.environment_fault(text)
            dying = self._dying_container()
            if dying:  # killed a moment ago: Docker says so a little after its clients notice
                return dying
            return f"the server does not answer ({found[1] if found else text}){docker}"
        return None

    def _answer(self) -> str:
        """``""`` when the server runs a query, else the first line of what it (or the driver) said."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError as exc:
            return first_line(exc.orig or exc, secrets_of(self.engine.url))
        return ""

    def _dying_container(self, limit_s: float = 3.0) -> str:
        """The container's state once Docker reports it exited or paused (within ``limit_s``), else ``""``."""
        deadline = time.monotonic() + limit_s
        while self.container is not None and time.monotonic() < deadline:
            state = container_state(self.container)
            if state.broken:
                return state.text
            time.sleep(0.2)
        return ""

    def databases(self) -> list[str]:
        """All database names on this server (for tests and ``clean``)."""
        with self.engine.connect() as conn:
            return self.backend.list_databases(conn)
