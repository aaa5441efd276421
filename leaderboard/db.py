"""Database URLs and engines: an SQLite file by default, PostgreSQL (or anything SQLAlchemy speaks) by URL.

``--db`` takes a SQLAlchemy URL (``sqlite:///leaderboard.db``, ``postgresql://user:pass@host/db``)
or a plain file path, which means an SQLite file. ``postgresql://`` URLs use psycopg 3 when the
older psycopg2 driver is not installed, so the same URL works with either.

Concurrency relies on two portable patterns only: state changes are conditional ``UPDATE``s whose
row count says who won, and a team's uploads are serialized by updating the team row first.
SQLite runs in WAL mode with a busy timeout, so readers never wait for writers and writers queue.
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
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
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
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except Exception as error:  # noqa: BLE001
        raise MixedPartsError(f"cannot open {redacted(url)}: {error}") from None


class Database:
    """An engine, a session factory and the schema: ``Database(url).create()`` is idempotent."""

    def __init__(self, url: str | None = None):
        url = url or os.environ.get(DB_ENV)
        if not url:
            raise MixedPartsError(f"no database given: pass --db URL (or set {DB_ENV})")
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create(self) -> Database:
        from sqlalchemy.exc import OperationalError

        try:
            Base.metadata.create_all(self.engine)
        except OperationalError as error:
            raise MixedPartsError(f"cannot use the database {redacted(self.url)}: {error.orig}") from None
        return self

    @contextmanager
    def session(self):
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions() as session:
            with session.begin():
                yield session

    def read(self) -> Session:
        return self.sessions()

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({redacted(self.url)})"
