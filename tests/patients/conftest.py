"""Patient-cache fixtures: the same tests against SQLite and PostgreSQL, each on a fresh database.

PostgreSQL comes from ``DICOMGATE_TEST_POSTGRES_URL`` (default: the ``test`` database on
127.0.0.1:5432). Each test session creates its own throw-away database on that server (so runs
are repeatable and never collide with other suites using ``test``) and drops it afterwards. If
the server cannot be reached the tests FAIL with a message saying so; they never skip.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from dicomgate.app import create_app
from dicomgate.migrations import upgrade_database
from dicomgate.patients.models import Patient
from dicomgate.settings import Settings

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
KINDS = ["sqlite", "postgresql"]


def postgres_admin_url() -> str:
    return os.environ.get("DICOMGATE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _asyncpg_dsn(sqlalchemy_url: str) -> str:
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


async def _admin(sql: str) -> None:
    admin = postgres_admin_url()
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(admin), timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {make_url(admin).render_as_string()} "
            f"({type(exc).__name__}: {exc}). The patient tests must run on PostgreSQL too: "
            "start it or set DICOMGATE_TEST_POSTGRES_URL.",
            pytrace=False,
        )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(kind: str, tmp_dir: Path) -> AsyncIterator[str]:
    """The URL of a new, empty database of this kind; dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_dir / f'patients-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"dicomgate_patients_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings_for(database_url: str) -> Settings:
    """Settings for an app that only needs its database (Orthanc is never called)."""
    return Settings(database_url=database_url, orthanc_url="http://127.0.0.1:9", workers=1)


@pytest.fixture(scope="session", params=KINDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A migrated database (SQLite file or a fresh PostgreSQL database) for the session."""
    async with fresh_database(request.param, tmp_path_factory.mktemp("patients-db")) as url:
        await asyncio.to_thread(upgrade_database, settings_for(url))
        yield url


@pytest.fixture
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty, never-migrated database of the kind given by ``request.param``."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
async def patients_app(database_url: str) -> AsyncIterator[FastAPI]:
    """The real app with its real lifespan, on the parametrized database."""
    application = create_app(settings_for(database_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(patients_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, on an empty ``patients`` table."""
    async with patients_app.state.runtime.sessions() as session:
        await session.execute(delete(Patient))
        await session.commit()
    transport = httpx.ASGITransport(app=patients_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test") as c:
        yield c


PatientJson = dict[str, Any]
PutPatient = Callable[..., Any]


@pytest.fixture
def put_patient(api: httpx.AsyncClient) -> PutPatient:
    """Builder: store one patient through the API and return the response."""

    async def put(patient_id: str, **fields: Any) -> httpx.Response:
        body = {"family_name": "Doe", "given_name": "Jane", "gender": "female", **fields}
        response = await api.put(f"/api/ris/patients/{patient_id}/", json=body)
        assert response.status_code in (200, 201), response.text
        return response

    return put
