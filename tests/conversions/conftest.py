"""Fixtures for conversions: an Orthanc per OverwriteInstances setting, a migrated DB, a runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dicomgate.conversions.journals import Journal, open_journal
from dicomgate.runtime import Runtime, open_runtime
from dicomgate.settings import Settings
from tests.conversions.helpers import JOURNALS, USER_METADATA, make_settings
from tests.databases import fresh_database
from tests.orthanc_process import OrthancProcess


@pytest.fixture(scope="session", params=[False, True], ids=["overwrite-off", "overwrite-on"])
def any_orthanc(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OrthancProcess]:
    """An Orthanc with ``OverwriteInstances`` off, then one with it on (and user metadata)."""
    server = OrthancProcess(
        tmp_path_factory.mktemp("orthanc-conv"),
        overwrite_instances=request.param,
        extra_config={"UserMetadata": USER_METADATA},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def conv_orthanc(any_orthanc: OrthancProcess) -> OrthancProcess:
    any_orthanc.start()
    any_orthanc.clear()
    return any_orthanc


@pytest.fixture
def conv_settings(conv_orthanc: OrthancProcess, tmp_path: Path) -> Settings:
    return make_settings(conv_orthanc, tmp_path)


@pytest.fixture
async def runtime(conv_settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(conv_settings) as rt:
        yield rt


@pytest.fixture(params=JOURNALS)
async def journal_runtime(
    request: pytest.FixtureRequest, conv_orthanc: OrthancProcess, tmp_path: Path
) -> AsyncIterator[Runtime]:
    """A runtime on SQLite (folder journal), then on a fresh PostgreSQL database (its table)."""
    async with fresh_database(
        "sqlite" if request.param == "folder" else "postgresql", tmp_path, prefix="journal"
    ) as url:
        settings = await asyncio.to_thread(make_settings, conv_orthanc, tmp_path, database_url=url)
        async with open_runtime(settings) as rt:
            yield rt


@pytest.fixture
def journal(journal_runtime: Runtime) -> Journal:
    """The journal the runtime's database brings (see ``journal_runtime``)."""
    return open_journal(journal_runtime.engine, journal_runtime.settings.journal_dir)
