"""Database URLs and engines: an SQLite file by default, PostgreSQL (or anything SQLAlchemy speaks) by URL.

``--db`` takes a SQLAlchemy URL (``sqlite:///leaderboard.db``, ``postgresql://user:pass@host/db``)
or a plain file path, which means an SQLite file. ``postgresql://`` URLs use psycopg 3 when the
older psycopg2 driver is not installed, so the same URL works with either.

Concurrency relies on two portable patterns only: state changes are conditional ``UPDATE``s whose
row count says who won, and a team's uploads are serialized by updating the team row first.
SQLite runs in WAL mode with a busy timeout, so readers never wait for writers and writers queue,
and with ``synchronous=FULL``: a commit (an upload the server then acknowledges) is on disk, not
only in the operating system's cache, so a power failure cannot take back an acknowledged upload.

Nothing here creates a database by accident: :meth:`Database.open` refuses one that does not exist
(a mistyped ``--db`` must not start an empty board), only :meth:`Database.create` (``admin init``,
``serve --create``) makes one. An SQLite file that disappears (or is replaced) under a running
process is noticed after every commit (:class:`DatabaseGone`), so nothing is acknowledged into a
deleted file.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from leaderboard.models import Base
from mixedparts.errors import MixedPartsError

DB_ENV = "MIXEDPARTS_LEADERBOARD_DB"
SQLITE_BUSY_TIMEOUT_S = 60


def normalize_url(url: str) -> str:
    """A SQLAlchemy URL for ``url``; a bare path becomes an absolute ``sqlite:///`` URL."""
    url = str(url).strip()
    if not url:
        raise MixedPartsError("empty database URL")
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix) and importlib.util.find_spec("psycopg2") is None:
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def redacted(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(normalize_url(url)).render_as_string(hide_password=True)
    except (ArgumentError, MixedPartsError):
        return "<unparsable URL>"


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise MixedPartsError(f"not a database URL: {error}") from None
    if parsed.get_backend_name() == "sqlite":
        try:
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})
        except Exception as error:  # noqa: BLE001 - a missing driver or a bad option, reported as bad input
            raise MixedPartsError(f"cannot open {redacted(url)}: {error}") from None

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except Exception as error:  # noqa: BLE001
        raise MixedPartsError(f"cannot open {redacted(url)}: {error}") from None


class DatabaseGone(MixedPartsError):
    """The SQLite file this process opened was deleted or replaced: nothing written now would last."""


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL; None for other databases and in-memory ones."""
    parsed = make_url(url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


class Database:
    """An engine and a session factory; :meth:`open` an existing leaderboard, or :meth:`create` one."""

    def __init__(self, url: str | None = None):
        url = url or os.environ.get(DB_ENV)
        if not url:
            raise MixedPartsError(f"no database given: pass --db URL (or set {DB_ENV})")
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.file = sqlite_file(self.url)
        self.identity: tuple[int, int] | None = None

    def create(self) -> Database:
        """Make the database (and an SQLite file's folder) if missing, and any missing table; idempotent."""
        from sqlalchemy.exc import OperationalError

        if self.file is not None:
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise MixedPartsError(f"cannot create the folder of {self.file}: {error.strerror}") from None
        try:
            Base.metadata.create_all(self.engine)
        except OperationalError as error:
            raise MixedPartsError(f"cannot use the database {redacted(self.url)}: {error.orig}") from None
        self._remember_file()
        return self

    def open(self) -> Database:
        """Use an existing leaderboard database; refuse one that does not exist or has no leaderboard tables."""
        from sqlalchemy import inspect
        from sqlalchemy.exc import OperationalError

        hint = (f"create it with `mixedparts-leaderboard admin --db {redacted(self.url)} init` (or `serve "
                f"--create`)")
        if self.file is not None and not self.file.is_file():
            raise MixedPartsError(f"{self.file}: no such leaderboard database; {hint}")
        try:
            tables = set(inspect(self.engine).get_table_names())
        except OperationalError as error:
            raise MixedPartsError(f"cannot use the database {redacted(self.url)}: {error.orig}") from None
        missing = {table.name for table in Base.metadata.sorted_tables} - tables
        if missing == {table.name for table in Base.metadata.sorted_tables}:
            raise MixedPartsError(f"{redacted(self.url)} holds no leaderboard; {hint}")
        if missing:  # tables added by a newer version: adding them loses nothing
            self.create()
        self._remember_file()
        return self

    def _remember_file(self) -> None:
        if self.file is not None:
            stat = self.file.stat()
            self.identity = (stat.st_dev, stat.st_ino)

    def check_present(self) -> None:
        """Raise :class:`DatabaseGone` if the SQLite file opened is no longer at its path."""
        if self.file is None or self.identity is None:
            return
        try:
            stat = self.file.stat()
            present = (stat.st_dev, stat.st_ino) == self.identity
        except OSError:
            present = False
        if not present:
            raise DatabaseGone(f"the database file {self.file} was deleted or replaced while in use; nothing is "
                               f"recorded until the server is restarted on a database")

    def check_writable(self) -> None:
        """Begin a write (an UPDATE that matches no row) and roll it back: fails on a read-only database."""
        from sqlalchemy import text

        self.check_present()
        with self.sessions() as session:
            with session.begin():
                session.execute(text("UPDATE lb_teams SET active = active WHERE 1 = 0"))
                session.rollback()

    @contextmanager
    def session(self):
        """A session in one transaction: committed on success, rolled back on error; the commit is checked to
        have gone into the file this process opened."""
        with self.sessions() as session:
            with session.begin():
                yield session
        self.check_present()

    def read(self) -> Session:
        return self.sessions()

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({redacted(self.url)})"
