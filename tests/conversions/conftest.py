"""Fixtures for conversions: an Orthanc per OverwriteInstances setting, a migrated DB, a runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dicomgate.runtime import Runtime, open_runtime
from dicomgate.settings import Settings
from tests.conversions.helpers import USER_METADATA, make_settings
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
