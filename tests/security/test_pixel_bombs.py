"""Pixel bombs inside the codestream: refused before any decoder runs, on every path.

The bomb of issue 12 is a ~1 KB file whose dataset says 16×16 while its codestream header says
60000×60000: every dataset check passes, and a decoder then allocates gigabytes. The worker's
peak RSS is the measure: the app under test has one worker whose address-space limit (4 GiB) is
far above 1 GiB, so a peak under 1 GiB proves nothing was decoded, not that the limit bit.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pydicom
import pytest
from fastapi import FastAPI

from dicomgate.app import create_app
from dicomgate.codec.pool import WorkerPool, ping
from dicomgate.conversions.plan import make_selection
from dicomgate.conversions.service import run_job, start_or_resume
from dicomgate.errors import WorkerMemoryExceeded
from dicomgate.runtime import Runtime
from dicomgate.settings import Settings
from tests.orthanc_process import OrthancProcess
from tests.security.codestreams import SEEDS, bomb
from tests.security.test_hostile_input import instance_count, stored_file

GiB = 1024**3
UPLOAD = "/api/ris/upload/dicom/"


def peak_rss() -> int:
    """The worker's peak resident set size in bytes (VmHWM), read in the worker itself."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def allocate(size: int) -> int:
    """A task that touches ``size`` bytes (as a runaway decoder would)."""
    return int(np.ones(size, dtype=np.uint8).sum())


@pytest.fixture(scope="module")
async def one_worker_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update={"workers": 1, "worker_memory_limit": 4 * GiB}))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def bomb_client(one_worker_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=one_worker_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test") as c:
        yield c


def _runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def _worker(app: FastAPI) -> tuple[int, int]:
    """(pid, peak RSS) of the app's only worker."""
    pool = _runtime(app).pool
    return await pool.run(ping), await pool.run(peak_rss)


class TestIngest:
    @pytest.mark.parametrize("name", sorted(SEEDS))
    async def test_bomb_is_refused_with_422_nothing_stored_nothing_decoded(
        self,
        bomb_client: httpx.AsyncClient,
        one_worker_app: FastAPI,
        clean_orthanc: OrthancProcess,
        name: str,
    ) -> None:
        data = bomb(name)
        assert len(data) < 1300
        pid, _ = await _worker(one_worker_app)
        r = await bomb_client.post(UPLOAD, files={"file": ("b.dcm", data, "application/dicom")})
        after_pid, peak = await _worker(one_worker_app)
        assert after_pid == pid  # the same worker handled it: its peak covers the bomb
        assert peak < 1 * GiB, f"worker peaked at {peak / GiB:.2f} GiB"
        assert r.status_code == 422, r.text
        assert r.json()["type"] == "InvalidCodestream"
        assert "nothing was decoded" in r.json()["error"]
        if name != "rle":
            assert "60000×60000 pixels where Columns×Rows is 16×16" in r.json()["error"]
        assert await instance_count(clean_orthanc) == 0


class TestStoredBombs:
    """A hostile file already in Orthanc (stored before dicomgate, or by another route)."""

    async def test_preview_refuses_without_decoding(
        self,
        bomb_client: httpx.AsyncClient,
        one_worker_app: FastAPI,
        clean_orthanc: OrthancProcess,
    ) -> None:
        stored = clean_orthanc.store(bomb("j2k-lossless"))
        pid, _ = await _worker(one_worker_app)
        r = await bomb_client.get(f"/api/orthanc/instances/{stored['ID']}/preview/")
        assert r.status_code == 422, r.text
        assert r.json()["type"] == "InvalidCodestream"
        assert "60000×60000" in r.json()["error"]
        after_pid, peak = await _worker(one_worker_app)
        assert after_pid == pid and peak < 1 * GiB

    @pytest.mark.parametrize(
        ("suffix", "accept"),
        [
            ("/frames/1", 'multipart/related; type="application/octet-stream"'),
            (
                "",
                'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1',
            ),
            ("/rendered", "image/png"),
        ],
        ids=["decoded-frame", "decoded-instance", "rendered"],
    )
    async def test_wado_refuses_without_decoding(
        self,
        bomb_client: httpx.AsyncClient,
        one_worker_app: FastAPI,
        clean_orthanc: OrthancProcess,
        suffix: str,
        accept: str,
    ) -> None:
        data = bomb("j2k-lossless")
        clean_orthanc.store(data)
        ds = pydicom.dcmread(io.BytesIO(data))
        path = (
            f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}{suffix}"
        )
        pid, _ = await _worker(one_worker_app)
        r = await bomb_client.get(path, headers={"Accept": accept})
        after_pid, peak = await _worker(one_worker_app)
        assert after_pid == pid and peak < 1 * GiB, f"worker peaked at {peak / GiB:.2f} GiB"
        assert r.status_code == 422, (r.headers, r.content[:300])
        assert r.json()["type"] == "InvalidCodestream"
        assert "60000×60000" in r.json()["error"]

    @pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "real-run"])
    async def test_conversion_fails_the_instance_and_keeps_it(
        self, one_worker_app: FastAPI, clean_orthanc: OrthancProcess, dry_run: bool
    ) -> None:
        data = bomb("j2k-lossless")
        stored = clean_orthanc.store(data)
        runtime = _runtime(one_worker_app)
        pid, _ = await _worker(one_worker_app)
        job_id = await start_or_resume(
            runtime,
            selection=make_selection(all_studies=True),
            dry_run=dry_run,
            resume=False,
            exact=dry_run,
        )
        summary = await run_job(runtime, job_id, concurrency=1)
        assert summary.failed == 1 and summary.converted == 0
        after_pid, peak = await _worker(one_worker_app)
        assert after_pid == pid and peak < 1 * GiB
        assert await stored_file(clean_orthanc, stored["ID"]) == data  # untouched


class TestWorkerMemoryLimit:
    async def test_a_task_past_the_limit_fails_alone_and_the_worker_is_replaced(self) -> None:
        pool = WorkerPool(1, default_timeout=60, memory_limit=1 * GiB)
        try:
            first = await pool.run(ping)
            assert await pool.run(allocate, 64 * 1024**2) == 64 * 1024**2
            with pytest.raises(WorkerMemoryExceeded, match=r"1\.0 GiB.*replaced"):
                await pool.run(allocate, 2 * GiB)
            assert await pool.run(ping) != first  # a fresh worker
            assert WorkerMemoryExceeded.status_code == 422
        finally:
            pool.close()

    async def test_a_deflate_bomb_upload_is_a_clear_422_not_a_500(
        self, settings: Settings, clean_orthanc: OrthancProcess
    ) -> None:
        """A decoder's own bomb (zlib, inflated whole by pydicom) meets the address-space
        limit: that upload fails with a clear message, the worker is replaced, the service
        keeps answering."""
        app = create_app(settings.model_copy(update={"workers": 1, "worker_memory_limit": GiB}))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                pid = await _runtime(app).pool.run(ping)
                r = await client.post(
                    UPLOAD, files={"file": ("d.dcm", deflate_bomb(GiB), "application/dicom")}
                )
                assert r.status_code == 422, r.text
                assert r.json()["type"] == "WorkerMemoryExceeded"
                assert "DICOMGATE_WORKER_MEMORY_LIMIT" in r.json()["error"]
                assert await _runtime(app).pool.run(ping) != pid
                assert (await client.get("/api/ris/health/")).status_code == 200
        assert await instance_count(clean_orthanc) == 0


def deflate_bomb(inflated: int) -> bytes:
    """A Deflated Explicit VR Little Endian file whose data set inflates to ``inflated`` bytes
    of zeros (PS3.5 §A.5: the whole data set after the file meta is one deflate stream)."""
    import zlib

    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    from io import BytesIO

    out = BytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta)  # type: ignore[arg-type]
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = bytes(64 * 1024**2)
    for _ in range(inflated // len(chunk)):
        out.write(deflate.compress(chunk))
    out.write(deflate.flush())
    return out.getvalue()
