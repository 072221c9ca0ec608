"""Throw-away test databases: a SQLite file, or a fresh database on the PostgreSQL server.

PostgreSQL comes from ``DICOMGATE_TEST_POSTGRES_URL`` (default: the ``test`` database on
127.0.0.1:5432). Each use creates its own database on that server (so runs are repeatable and
never collide with other suites using ``test``) and drops it afterwards. If the server cannot be
reached the test FAILS with a message saying so; it never skips.

Shared by the patient-cache tests and the ingest tests (which look patients up on both kinds).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
KINDS = ["sqlite", "postgresql"]


def postgres_admin_url() -> str:
    return os.environ.get("DICOMGATE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _asyncpg_dsn(sqlalchemy_url: str) -> str:
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


async def admin_execute(sql: str) -> None:
    """Run one statement on the PostgreSQL server's admin database; fail (never skip) if down."""
    admin = postgres_admin_url()
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(admin), timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {make_url(admin).render_as_string()} "
            f"({type(exc).__name__}: {exc}). The PostgreSQL tests must run, not skip: "
            "start it or set DICOMGATE_TEST_POSTGRES_URL.",
            pytrace=False,
        )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(
    kind: str, tmp_dir: Path, *, prefix: str = "patients"
) -> AsyncIterator[str]:
    """The URL of a new, empty database of this kind; dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_dir / f'{prefix}-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"dicomgate_{prefix}_{uuid.uuid4().hex[:12]}"
    await admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
