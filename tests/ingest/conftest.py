"""Ingest fixtures: patients in the real patient cache, Orthanc inspection helpers.

The patient cache is SQLite unless a test is marked ``@BOTH_DATABASES``: then it runs twice,
once on SQLite and once on a fresh PostgreSQL database (``tests/databases.py``; PostgreSQL
unreachable → the test fails, never skips). Only the tests where the lookup matters (stamping,
unknown patient, folder upload) take both: every other test stays on SQLite.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from dicomgate.app import create_app
from dicomgate.db import session_scope
from dicomgate.dicom.demographics import Demographics
from dicomgate.migrations import upgrade_database
from dicomgate.patients.schemas import PatientFields
from dicomgate.patients.service import upsert_patient
from dicomgate.settings import Settings
from tests.databases import fresh_database
from tests.ingest.helpers import MakePatient, OrthancView
from tests.orthanc_process import OrthancProcess


@pytest.fixture(scope="session")
async def postgres_app(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    """The session app's twin (same Orthanc and caps) on a fresh, migrated PostgreSQL database."""
    async with fresh_database(
        "postgresql", tmp_path_factory.mktemp("ingest-db"), prefix="ingest"
    ) as url:
        on_postgres = settings.model_copy(
            update={"database_url": url, "journal_dir": tmp_path_factory.mktemp("pg-journal")}
        )
        await asyncio.to_thread(upgrade_database, on_postgres)
        application = create_app(on_postgres)
        async with application.router.lifespan_context(application):
            yield application


@pytest.fixture
def db_kind() -> str:
    """The patient cache's database for this test: SQLite unless marked ``BOTH_DATABASES``."""
    return "sqlite"


@pytest.fixture
def ingest_app(db_kind: str, request: pytest.FixtureRequest) -> FastAPI:
    """The app on ``db_kind``; the PostgreSQL one is only started when a test asks for it."""
    name = {"sqlite": "app", "postgresql": "postgres_app"}[db_kind]
    application: FastAPI = request.getfixturevalue(name)
    return application


@pytest.fixture
async def client(ingest_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app on ``db_kind`` (overrides the suite-wide SQLite ``client``)."""
    transport = httpx.ASGITransport(app=ingest_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test") as c:
        yield c


@pytest.fixture
def make_patient(ingest_app: FastAPI) -> MakePatient:
    """Insert a patient with a unique Patient ID into the patient cache of the app on test."""

    async def _make(
        *,
        family_name: str = "Doe",
        given_name: str = "Jane",
        birth_date: str | None = "1970-01-31",
        gender: str = "female",
    ) -> Demographics:
        patient_id = f"ING-{uuid.uuid4().hex[:10]}"
        fields = PatientFields.model_validate(
            {
                "family_name": family_name,
                "given_name": given_name,
                "birth_date": birth_date,
                "gender": gender,
            }
        )
        async with session_scope(ingest_app.state.runtime.sessions) as session:
            patient, _ = await upsert_patient(session, patient_id=patient_id, fields=fields)
            return patient.demographics()

    return _make


@pytest.fixture
def stored(clean_orthanc: OrthancProcess) -> OrthancView:
    """An emptied Orthanc, seen through its own API."""
    return OrthancView(clean_orthanc)


@pytest.fixture
async def small_cap_client(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """A second app whose upload caps are tiny: 4 KiB per file, 3 files and 10,000 bytes per
    request."""
    small = settings.model_copy(
        update={
            "max_upload_bytes": 4096,
            "max_files": 3,
            "max_request_bytes": 10_000,
            "workers": 1,
        }
    )
    application = create_app(small)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test") as c:
            yield c


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
