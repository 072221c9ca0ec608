"""Alembic from inside dicomgate: apply migrations, and check a database is at the head."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError

from dicomgate.db import create_engine
from dicomgate.errors import DatabaseNotMigrated, DatabaseUnavailable
from dicomgate.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

UPGRADE_HINT = (
    "run `dicomgate db upgrade` (from the same folder, or with the same DICOMGATE_DATA_DIR or "
    "DICOMGATE_DATABASE_URL)"
)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def database_location(url: str) -> str:
    """Where the database is, for a person: the SQLite file, else the URL without password."""
    path = sqlite_file(url)
    return str(path) if path is not None else make_url(url).render_as_string(hide_password=True)


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

    prepare_location(settings)
    command.upgrade(_config(settings), revision)


def prepare_location(settings: Settings) -> None:
    """Create the folder a SQLite database file goes in (SQLite creates the file, not folders)."""
    path = sqlite_file(settings.database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


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
    where = database_location(settings.database_url)
    with _quiet_alembic():
        heads = head_revisions(settings)
        path = sqlite_file(settings.database_url)
        # Never create an empty SQLite file (or fail on a missing folder) just by looking.
        if path is not None and not path.is_file():
            current: set[str] = set()
        else:
            try:
                current = await current_revisions(settings)
            except (DBAPIError, OSError) as exc:
                raise DatabaseUnavailable(
                    f"The database {where} cannot be reached: {type(exc).__name__}"
                ) from None
    if current == heads:
        return
    want = ", ".join(sorted(heads))
    if not current:
        raise DatabaseNotMigrated(
            f"The database {where} has no dicomgate schema (needs revision {want}); {UPGRADE_HINT}"
        )
    have = ", ".join(sorted(current))
    raise DatabaseNotMigrated(
        f"The database schema is at revision {have} but this dicomgate needs {want}; "
        f"{UPGRADE_HINT} (or, if the database is newer, run the matching dicomgate version)"
    )
