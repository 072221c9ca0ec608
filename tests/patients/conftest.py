"""Patient-cache fixtures: the same tests against SQLite and PostgreSQL, each on a fresh database.

The databases come from ``tests/databases.py`` (shared with the ingest tests): PostgreSQL from
``DICOMGATE_TEST_POSTGRES_URL``, a throw-away database per session, dropped afterwards; if the
server cannot be reached the tests FAIL with a message saying so; they never skip.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from dicomgate.app import create_app
from dicomgate.migrations import upgrade_database
from dicomgate.patients.models import Patient
from tests.databases import KINDS, fresh_database
from tests.patients.helpers import PutPatient, settings_for


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


@pytest.fixture
def put_patient(api: httpx.AsyncClient) -> PutPatient:
    """Builder: store one patient through the API and return the response."""

    async def put(patient_id: str, **fields: Any) -> httpx.Response:
        body = {"family_name": "Doe", "given_name": "Jane", "gender": "female", **fields}
        response = await api.put(f"/api/ris/patients/{patient_id}/", json=body)
        assert response.status_code in (200, 201), response.text
        return response

    return put
