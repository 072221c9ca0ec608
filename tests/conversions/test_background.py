"""The service's own conversion jobs survive a shutdown or a crash: they resume at start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from dicomgate.app import create_app
from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from dicomgate.conversions import run as run_module
from dicomgate.conversions.models import ConversionJob
from dicomgate.conversions.plan import InstanceResult, make_selection
from dicomgate.conversions.repository import create_job
from dicomgate.db import create_engine, create_sessionmaker, session_scope
from dicomgate.settings import Settings
from tests.builders import make_dataset, to_bytes
from tests.conversions.helpers import decoded_crc32s, make_settings
from tests.orthanc_process import OrthancProcess

STUDY = "1.2.826.0.1.3680043.10.9.77"


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def job_state(settings: Settings, job_id: int) -> str:
    engine = create_engine(settings.database_url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            job = await session.get(ConversionJob, job_id)
            assert job is not None
            return job.state
    finally:
        await engine.dispose()


async def wait_completed(client: httpx.AsyncClient, job_id: int) -> dict[str, object]:
    for _ in range(600):
        body: dict[str, object] = (await client.get(f"/api/ris/conversions/{job_id}/")).json()
        if body["state"] == "completed":
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not complete: {body}")


def store_study(orthanc: OrthancProcess, count: int) -> dict[str, tuple[int, ...]]:
    crcs = {}
    for n in range(count):
        data = to_bytes(make_dataset(rows=64, columns=64, study_uid=STUDY, instance_number=n))
        crcs[orthanc.store(data)["ID"]] = decoded_crc32s(data)
    return crcs


def assert_converted(orthanc: OrthancProcess, crcs: dict[str, tuple[int, ...]]) -> None:
    assert sorted(httpx.get(f"{orthanc.url}/instances").json()) == sorted(crcs)
    for orthanc_id, expected in crcs.items():
        data = httpx.get(f"{orthanc.url}/instances/{orthanc_id}/file").content
        assert pydicom.dcmread(BytesIO(data)).file_meta.TransferSyntaxUID in HTJ2K_SYNTAXES
        assert decoded_crc32s(data) == expected


async def test_job_left_running_by_a_killed_service_resumes_at_start(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    settings = await asyncio.to_thread(make_settings, clean_orthanc, tmp_path)
    crcs = await asyncio.to_thread(store_study, clean_orthanc, 3)
    engine = create_engine(settings.database_url)
    async with session_scope(create_sessionmaker(engine)) as session:
        job = await create_job(session, selection=make_selection(study=STUDY), dry_run=False)
        job.state = "running"  # as a service killed mid-run leaves it
        job_id = job.id
    await engine.dispose()

    async with running_app(settings) as client:
        body = await wait_completed(client, job_id)
    assert body["converted"] == 3
    await asyncio.to_thread(assert_converted, clean_orthanc, crcs)


async def test_shutdown_interrupts_and_the_next_start_finishes(
    clean_orthanc: OrthancProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = await asyncio.to_thread(make_settings, clean_orthanc, tmp_path)
    crcs = await asyncio.to_thread(store_study, clean_orthanc, 30)
    # Hold the run at its first instance (the gate never opens), so the shutdown below
    # certainly comes while the job runs.
    reached = asyncio.Event()
    real_convert = run_module.convert_instance

    async def held(*args: Any, **kwargs: Any) -> InstanceResult:
        reached.set()
        await asyncio.Event().wait()
        return await real_convert(*args, **kwargs)

    monkeypatch.setattr(run_module, "convert_instance", held)
    async with running_app(settings) as client:
        r = await client.post("/api/ris/conversions/", json={"study_instance_uid": STUDY})
        assert r.status_code == 202
        job_id = r.json()["id"]
        await asyncio.wait_for(reached.wait(), timeout=60)
    assert await job_state(settings, job_id) == "interrupted"
    monkeypatch.undo()

    async with running_app(settings) as client:
        body = await wait_completed(client, job_id)
    assert body["converted"] == 30
    await asyncio.to_thread(assert_converted, clean_orthanc, crcs)
