"""Alembic from inside dicomgate: apply migrations, and check a database is at the head."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from dicomgate.db import create_engine
from dicomgate.errors import DatabaseNotMigrated
from dicomgate.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

UPGRADE_HINT = "run `dicomgate db upgrade` (with the same DICOMGATE_DATABASE_URL)"


def alembic_config(settings: Settings) -> Config:
    """Alembic's Config for this project, with the URL from settings."""
    from alembic.config import Config

    candidates = [Path.cwd() / "alembic.ini", Path(__file__).resolve().parents[2] / "alembic.ini"]
    ini = next((p for p in candidates if p.is_file()), None)
    if ini is None:
        raise SystemExit("alembic.ini not found (run from the project folder)")
    config = Config(str(ini))
    config.set_main_option("script_location", str(ini.parent / "alembic"))
    config.attributes["database_url"] = settings.database_url
    return config


def _config(settings: Settings) -> Config:
    """The Config the service uses: alembic's own logging setup skipped (ours is in place)."""
    config = alembic_config(settings)
    config.attributes["skip_logging"] = True
    return config


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
    """Raise ``DatabaseNotMigrated`` unless the database is exactly at the migrations' head."""
    with _quiet_alembic():
        heads = head_revisions(settings)
        current = await current_revisions(settings)
    if current == heads:
        return
    want = ", ".join(sorted(heads))
    if not current:
        raise DatabaseNotMigrated(
            f"The database has no dicomgate schema (needs revision {want}); {UPGRADE_HINT}"
        )
    have = ", ".join(sorted(current))
    raise DatabaseNotMigrated(
        f"The database schema is at revision {have} but this dicomgate needs {want}; "
        f"{UPGRADE_HINT} (or, if the database is newer, run the matching dicomgate version)"
    )
