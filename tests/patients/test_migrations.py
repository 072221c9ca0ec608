"""Alembic owns the schema: upgrade, downgrade, upgrade again on SQLite and PostgreSQL; and the
service refuses to start on a database that is not at the head."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from dicomgate.app import create_app
from dicomgate.db import create_engine
from dicomgate.errors import DatabaseNotMigrated
from dicomgate.migrations import (
    current_revisions,
    downgrade_database,
    ensure_database_current,
    head_revisions,
    upgrade_database,
)
from tests import databases
from tests.databases import KINDS
from tests.patients.helpers import settings_for


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _execute(url: str, sql: str, **params: object) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


_INSERT = (
    "INSERT INTO patients (patient_id, family_name, given_name, birth_date, gender) "
    "VALUES (:pid, 'Doe', 'Jane', :bd, :gender)"
)


@pytest.mark.parametrize("empty_database_url", KINDS, indirect=True)
async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    settings = settings_for(empty_database_url)
    heads = head_revisions(settings)
    assert len(heads) == 1

    await asyncio.to_thread(upgrade_database, settings, revision="0001_patients")
    assert await current_revisions(settings) == {"0001_patients"}
    assert "patients" in await _tables(empty_database_url)
    await _execute(
        empty_database_url, _INSERT, pid="P1", bd=datetime.date(1970, 1, 2), gender="female"
    )

    await asyncio.to_thread(upgrade_database, settings)
    assert await current_revisions(settings) == heads
    await ensure_database_current(settings)

    await asyncio.to_thread(downgrade_database, settings, revision="base")
    assert await current_revisions(settings) == set()
    assert "patients" not in await _tables(empty_database_url)

    await asyncio.to_thread(upgrade_database, settings)
    assert await current_revisions(settings) == heads
    await ensure_database_current(settings)
    # The re-created table enforces its constraints.
    await _execute(empty_database_url, _INSERT, pid="P1", bd=None, gender="male")
    with pytest.raises(IntegrityError):
        await _execute(empty_database_url, _INSERT, pid="P1", bd=None, gender="male")
    with pytest.raises(IntegrityError):
        await _execute(empty_database_url, _INSERT, pid="P2", bd=None, gender="robot")
    # Timestamps are filled by the database.
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT created_at, updated_at FROM patients"))).one()
    finally:
        await engine.dispose()
    assert row.created_at is not None and row.updated_at is not None


@pytest.mark.parametrize("empty_database_url", KINDS, indirect=True)
async def test_service_refuses_to_start_on_unmigrated_database(empty_database_url: str) -> None:
    app = create_app(settings_for(empty_database_url))
    with pytest.raises(DatabaseNotMigrated) as caught:
        async with app.router.lifespan_context(app):
            pytest.fail("the app started on an unmigrated database")
    assert "no dicomgate schema" in caught.value.message
    assert "run `dicomgate db upgrade`" in caught.value.message
    assert not hasattr(app.state, "runtime")


@pytest.mark.parametrize("empty_database_url", KINDS, indirect=True)
async def test_service_refuses_to_start_on_outdated_database(empty_database_url: str) -> None:
    settings = settings_for(empty_database_url)
    await asyncio.to_thread(upgrade_database, settings)
    await _execute(empty_database_url, "UPDATE alembic_version SET version_num = '0000_older'")
    app = create_app(settings)
    with pytest.raises(DatabaseNotMigrated) as caught:
        async with app.router.lifespan_context(app):
            pytest.fail("the app started on an outdated database")
    head = next(iter(head_revisions(settings)))
    assert caught.value.message.startswith(
        f"The database schema is at revision 0000_older but this dicomgate needs {head}; "
        "run `dicomgate db upgrade`"
    )


async def test_unreachable_postgres_fails_loudly_never_skips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "DICOMGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:9/test"
    )
    with pytest.raises(pytest.fail.Exception) as caught:
        await databases.admin_execute("SELECT 1")
    assert "PostgreSQL is not reachable at postgresql+asyncpg://postgres@127.0.0.1:9/test" in str(
        caught.value
    )
