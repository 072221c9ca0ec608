"""Shared fixtures: a real Orthanc process, the app with its real lifespan, DICOM builders."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from dicomgate.app import create_app
from dicomgate.settings import Settings
from tests.orthanc_process import OrthancProcess


@pytest.fixture(autouse=True)
def _short_stale_request_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recovery in this process waits 0.2 s, not 10, for a dead runner's requests to land: the
    tests' Orthanc is idle, and a test that recovers would otherwise wait 10 s each time. The
    grace itself is tested (tests/conversions/test_recovery.py); processes the tests start
    (workers, replicas) keep the real one."""
    monkeypatch.setattr("dicomgate.conversions.replace.STALE_REQUEST_GRACE", 0.2)


# Feature tests run with authentication off (the app logs its warning); tests/auth builds apps
# with it on and checks every route against every kind of caller.
os.environ.setdefault("DICOMGATE_AUTH_ENABLED", "false")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancProcess]:
    """One Orthanc for the session (default ``OverwriteInstances: false``)."""
    server = OrthancProcess(tmp_path_factory.mktemp("orthanc"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clean_orthanc(orthanc: OrthancProcess) -> OrthancProcess:
    """The session Orthanc, running and emptied before the test."""
    orthanc.start()
    orthanc.clear()
    return orthanc


@pytest.fixture(scope="session")
def settings(orthanc: OrthancProcess, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("db") / "dicomgate.db"
    settings = Settings(
        orthanc_url=orthanc.url,
        database_url=f"sqlite+aiosqlite:///{db}",
        workers=2,
        orthanc_timeout=30,
        journal_dir=tmp_path_factory.mktemp("journal"),
    )
    # The app refuses to start on an unmigrated database: apply the migrations first.
    from dicomgate.migrations import upgrade_database

    upgrade_database(settings)
    return settings


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The real app with its real lifespan (pool, HTTP client, DB engine), once per session."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test") as c:
        yield c


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """pydicom's own test files (installed with pydicom)."""
    import pydicom

    return Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.fixture(scope="session")
def pydicom_data_dir() -> Path:
    """The ``pydicom-data`` corpus (installed as the ``data_store`` package)."""
    import data_store

    return Path(data_store.__file__).parent / "data"
