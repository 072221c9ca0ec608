"""Alembic from inside dicomgate: apply migrations, and check a database is at the head."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from dicomgate.db import create_engine, database_reason, sqlite_path
from dicomgate.errors import DatabaseNotMigrated, DatabaseUnavailable
from dicomgate.redaction import redact_url
from dicomgate.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

UPGRADE_HINT = "run `dicomgate db upgrade` (with the same DICOMGATE_DATABASE_URL)"


def _config(settings: Settings) -> Config:
    from dicomgate.cli import alembic_config

    config = alembic_config(settings)
    config.attributes["skip_logging"] = True  # type: ignore[attr-defined]
    return config  # type: ignore[return-value]


def head_revisions(settings: Settings) -> set[str]:
    """The revisions this version of dicomgate's migrations ends at."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(_config(settings)).get_heads())


def upgrade_database(settings: Settings, *, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (blocking: call from a thread inside an event loop)."""
    from alembic import command

    command.upgrade(_config(settings), revision)


def downgrade_database(settings: Settings, *, revision: str) -> None:
    """Revert migrations down to ``revision`` (blocking)."""
    from alembic import command

    command.downgrade(_config(settings), revision)


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Reading revisions is not news: keep alembic's INFO chatter out of service/CLI logs."""
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_log.setLevel(level)


def _current(connection: Connection) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    return set(MigrationContext.configure(connection).get_current_heads())


async def current_revisions(settings: Settings) -> set[str]:
    """The revisions the database is stamped with (empty when never migrated)."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


async def ensure_database_current(settings: Settings) -> None:
    """Raise ``DatabaseNotMigrated`` unless the database is exactly at the migrations' head.

    The messages name the database (password masked): a command pointed at another database
    than the service's (a different DICOMGATE_DATABASE_URL) says so instead of failing later.
    """
    where = redact_url(settings.database_url)
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        raise DatabaseNotMigrated(
            f"The database has no dicomgate schema (the file does not exist); {UPGRADE_HINT}. "
            f"Database: {where}"
        )
    with _quiet_alembic():
        heads = head_revisions(settings)
        try:
            current = await current_revisions(settings)
        except (OperationalError, InterfaceError) as exc:
            raise DatabaseUnavailable(
                f"The database cannot be opened ({database_reason(exc)}): dicomgate must be "
                f"able to read and write it (and, for SQLite, its folder). Database: {where}"
            ) from None
    if current == heads:
        return
    want = ", ".join(sorted(heads))
    if not current:
        raise DatabaseNotMigrated(
            f"The database has no dicomgate schema (needs revision {want}); {UPGRADE_HINT}. "
            f"Database: {where}"
        )
    have = ", ".join(sorted(current))
    raise DatabaseNotMigrated(
        f"The database schema is at revision {have} but this dicomgate needs {want}; "
        f"{UPGRADE_HINT} (or, if the database is newer, run the matching dicomgate version). "
        f"Database: {where}"
    )
