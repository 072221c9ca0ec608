"""Database plumbing: the declarative base, the async engine and the session scope."""

from __future__ import annotations

import datetime
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import DateTime, Dialect, MetaData, TypeDecorator, event, make_url, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from dicomgate.errors import DatabaseUnavailable

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime.datetime]):
    """A timestamp that is always timezone-aware UTC, in and out, on SQLite and PostgreSQL alike.

    PostgreSQL's ``timestamptz`` keeps the instant; SQLite has no time zone type and stores the
    naive text (``CURRENT_TIMESTAMP`` is UTC). Values are converted to UTC before they are
    written (naive ones are taken as UTC) and come back aware, so every answer carries its
    offset whatever the database.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime.datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: datetime.datetime) -> datetime.datetime:
    """``value`` in UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


class Base(DeclarativeBase):
    """Base of every ORM model; Alembic owns the schema built from its metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, *, create_missing: bool = False) -> AsyncEngine:
    """An async engine for SQLite (aiosqlite) or PostgreSQL (asyncpg).

    A SQLite file is opened read-write but never created (``mode=rw``) unless
    ``create_missing`` (``dicomgate db upgrade``): the service and the CLI must not write into
    a fresh empty file because a path is wrong or the real file was deleted. And every
    connection checked out is first proved to still be the file the path names (see
    :func:`_guard_sqlite_file`).
    """
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None and not create_missing:
            url = _open_existing_only(url, path)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        if path is not None:
            _guard_sqlite_file(engine, path)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases, in-memory SQLite and URI forms)."""
    parsed = make_url(url)
    database = parsed.database
    if (
        not parsed.drivername.startswith("sqlite")
        or not database
        or database == ":memory:"
        or parsed.query.get("uri")
        or database.startswith("file:")
    ):
        return None
    return Path(database)


def _open_existing_only(url: str, path: Path) -> str:
    """The same database as a SQLite URI with ``mode=rw``: open it, never create it."""
    parsed = make_url(url)
    query = {**parsed.query, "mode": "rw", "uri": "true"}
    return parsed.set(database=f"file:{quote(str(path))}", query=query).render_as_string(
        hide_password=False
    )


def _guard_sqlite_file(engine: AsyncEngine, path: Path) -> None:
    """Refuse every checkout once the file at ``path`` is gone or is another file.

    An open SQLite connection keeps writing into the file it opened, even after that file
    was deleted (or replaced by a restore): writes would "succeed" into an unlinked inode and
    vanish at the next start. The inode is noted when the first connection opens and compared
    on each checkout (one stat call).
    """
    opened: dict[str, tuple[int, int]] = {}

    def identity() -> tuple[int, int] | None:
        try:
            found = os.stat(path)
        except OSError:
            return None
        return found.st_dev, found.st_ino

    def check() -> None:
        if "file" in opened and identity() != opened["file"]:
            raise DatabaseUnavailable(
                f"The SQLite database file {path} was deleted or replaced while dicomgate was "
                "running; nothing was written. Restore it and restart dicomgate."
            )

    @event.listens_for(engine.sync_engine, "do_connect")
    def _before_connect(_dialect, _record, _cargs, _cparams):  # type: ignore[no-untyped-def]
        check()  # a new connection would open a restored copy, or fail on a missing file

    @event.listens_for(engine.sync_engine, "connect")
    def _note(_dbapi_conn, _record):  # type: ignore[no-untyped-def]
        now = identity()
        if now is not None:
            opened.setdefault("file", now)

    @event.listens_for(engine.sync_engine, "checkout")
    def _check(_dbapi_conn, _record, _proxy):  # type: ignore[no-untyped-def]
        check()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextmanager
def map_database_errors() -> Iterator[None]:
    """The database failing (unwritable, full, gone, unreachable) is a 503 with its reason,
    not a bare 500; SQL and parameters (patient data) never reach the message."""
    try:
        yield
    except (OperationalError, InterfaceError, SQLAlchemyTimeoutError) as exc:
        raise DatabaseUnavailable(
            f"The database is unavailable ({database_reason(exc)}); retry later"
        ) from None


def database_reason(exc: BaseException) -> str:
    """The driver's own first line (e.g. 'attempt to write a readonly database'), short."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return (text[0] if text else type(original).__name__)[:200]


@asynccontextmanager
async def session_scope(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """The one transaction boundary: commit on success, roll back on any error."""
    async with sessions() as session:
        with map_database_errors():
            try:
                yield session
                await session.commit()
            except BaseException:
                with suppress(OperationalError, InterfaceError):  # the error above says why
                    await session.rollback()
                raise


async def check_writable(engine: AsyncEngine) -> None:
    """Raise unless the database accepts a committed write: Alembic's version row set to its
    own value. Reachable is not enough: a read-only or full database answers ``SELECT 1`` and
    refuses every upsert; and only a commit reaches the disk (SQLite's WAL, PostgreSQL's log).
    """
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
