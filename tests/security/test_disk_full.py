"""A full spool disk (issue 12 item 8): 507 with a clear message wherever the space runs out
(spooling, zip expansion, a worker's output), and a folder upload stores nothing until every
file is prepared. The spool is a small tmpfs (the tests run as root)."""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from dicomgate.app import create_app
from dicomgate.settings import Settings
from tests.builders import make_dataset, to_bytes
from tests.orthanc_process import OrthancProcess
from tests.security.test_hostile_input import instance_count

MiB = 1024**2


def noise_file(side: int, seed: int) -> bytes:
    """A side×side 16-bit image of noise (transcodes to about its own size)."""
    pixels = np.random.default_rng(seed).integers(0, 65535, (side, side), dtype=np.uint16)
    return to_bytes(make_dataset(rows=side, columns=side, bits_stored=16, pixels=pixels))


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Path]:
    """A 5 MiB tmpfs for the upload spool."""
    disk = tmp_path / "spool"
    disk.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(disk)],
        check=True,
        capture_output=True,
    )
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True, capture_output=True)


@pytest.fixture
async def client(settings: Settings, spool: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"spool_dir": spool, "workers": 1}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


def assert_507(response: httpx.Response, while_: str) -> None:
    assert response.status_code == 507, response.text
    body = response.json()
    assert body["type"] == "InsufficientStorage"
    assert body["error"] == (
        f"The server ran out of disk space while {while_} (its upload spool, "
        "DICOMGATE_SPOOL_DIR, is full); nothing was stored. Retry later."
    )


class TestSpoolFull:
    async def test_while_spooling(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, spool: Path
    ) -> None:
        big = noise_file(1700, 1)  # 5.5 MiB: more than the spool holds
        r = await client.post(
            "/api/ris/upload/dicom/", files={"file": ("big.dcm", big, "application/dicom")}
        )
        assert_507(r, "spooling the upload")
        assert await instance_count(clean_orthanc) == 0
        assert os.listdir(spool) == []  # the spooled parts were removed

    async def test_a_single_file_needs_no_room_for_its_output(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, spool: Path
    ) -> None:
        """A request of one file gets its output back from the worker in memory: a 2.7 MiB
        file whose 2.9 MiB output would not fit next to it in the spool is stored whole.
        (A worker writing an output with no room: the folder upload below.)"""
        r = await client.post(
            "/api/ris/upload/dicom/",
            files={"file": ("a.dcm", noise_file(1200, 2), "application/dicom")},  # 2.7 MiB
        )
        assert r.status_code == 201, r.text
        assert r.json()["converted"] is True
        assert r.json()["stored_size"] > 5 * MiB - r.json()["original_size"]
        assert await instance_count(clean_orthanc) == 1
        assert os.listdir(spool) == []

    async def test_a_folder_upload_stores_nothing_when_a_later_file_has_no_room(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        """Two small files and a big one (3.1 MiB spooled): the big one's output (2.3 MiB)
        cannot fit even once the small ones are gone. Storing each file as soon as it was
        transcoded (as before) put the small ones in Orthanc first; now nothing is stored."""
        r = await client.put(
            "/api/ris/patients/DISK-1/", json={"family_name": "Doe", "gender": "female"}
        )
        assert r.status_code in (200, 201), r.text
        sides = [512, 512, 1050]
        files = [
            ("files", (f"{i}.dcm", noise_file(side, 10 + i), "application/dicom"))
            for i, side in enumerate(sides)
        ]
        r = await client.post(
            "/api/orthanc/upload-patient/", data={"patient_id": "DISK-1"}, files=files
        )
        assert_507(r, "writing the transcoded file")
        assert await instance_count(clean_orthanc) == 0

    async def test_while_expanding_a_zip(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("series/a.dcm", noise_file(1000, 3))  # 1.9 MiB, expanded next to it
            zf.writestr("series/b.dcm", noise_file(1000, 4))
        r = await client.put(
            "/api/ris/patients/DISK-2/", json={"family_name": "Doe", "gender": "female"}
        )
        assert r.status_code in (200, 201), r.text
        r = await client.post(
            "/api/orthanc/upload-patient/",
            data={"patient_id": "DISK-2"},
            files={"files": ("study.zip", archive.getvalue(), "application/zip")},
        )
        assert_507(r, "expanding a zip archive")
        assert await instance_count(clean_orthanc) == 0

    async def test_stow_while_spooling(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        boundary = "b0undary"
        body = (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + noise_file(1700, 5)
            + f"\r\n--{boundary}--\r\n".encode()
        )
        r = await client.post(
            "/dicomweb/studies",
            content=body,
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
            },
        )
        assert_507(r, "spooling the upload")
        assert await instance_count(clean_orthanc) == 0


def test_sizes_fit_the_scenarios() -> None:
    """The scenarios above depend on these sizes against the 5 MiB spool."""
    assert len(noise_file(1700, 1)) > 5 * MiB
    assert 2.5 * MiB < len(noise_file(1200, 2)) < 3 * MiB  # in + out > 5 MiB, in alone fits
    spooled = 2 * len(noise_file(512, 10)) + len(noise_file(1050, 12))
    assert spooled < 3.2 * MiB and spooled + 1.07 * len(noise_file(1050, 12)) > 5.2 * MiB
