"""Helpers for the conversion tests: the corpus, settings, and what Orthanc really serves."""

from __future__ import annotations

import hashlib
import zlib
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
import pydicom

from dicomgate.migrations import upgrade_database
from dicomgate.settings import Settings
from tests.orthanc_process import OrthancProcess

# Greyscale, colour, multi-frame colour, SR and RT objects without pixels, a lossy JPEG and a
# 32-bit RT dose the encoder refuses (all with distinct SOP Instance UIDs).
CORPUS = {
    "CT_small.dcm": "converted",
    "MR_small.dcm": "converted",
    "SC_rgb_small_odd.dcm": "converted",
    "SC_rgb_rle_2frame.dcm": "converted",
    "test-SR.dcm": "no_pixel_data",
    "rtplan.dcm": "no_pixel_data",
    "JPEG-lossy.dcm": "lossy_source",
    "rtdose.dcm": "codec_refused",
}


JOURNALS = ["folder", "database"]  # SQLite's journal folder; PostgreSQL's table


# User-defined metadata Orthanc keeps per instance (lost with a delete; carried over by a run).
USER_METADATA = {"Comment": 1024}


def make_settings(
    orthanc: OrthancProcess, folder: Path, *, database_url: str | None = None
) -> Settings:
    """Settings for a run against ``orthanc`` with its own migrated DB (SQLite unless
    ``database_url``; PostgreSQL brings the database journal) and journal folder."""
    settings = Settings(
        orthanc_url=orthanc.url,
        database_url=database_url or f"sqlite+aiosqlite:///{folder / 'conv.db'}",
        workers=2,
        orthanc_timeout=30,
        journal_dir=folder / "journal",
    )
    upgrade_database(settings)
    return settings


# --- Checks ----------------------------------------------------------------------------------
def decoded_crc32s(data: bytes) -> tuple[int, ...]:
    """CRC32 of each frame as pydicom decodes it (HTJ2K via pylibjpeg-openjpeg, not imagecodecs)."""
    ds = pydicom.dcmread(BytesIO(data))
    if "PixelData" not in ds:
        return ()
    arr = np.ascontiguousarray(ds.pixel_array)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1:
        arr = arr[np.newaxis]
    return tuple(zlib.crc32(np.ascontiguousarray(frame).tobytes()) for frame in arr)


def stored_files(orthanc: OrthancProcess) -> dict[str, bytes]:
    """Every stored file, by SOP Instance UID (a UID stored twice fails the test)."""
    out: dict[str, bytes] = {}
    with httpx.Client(base_url=orthanc.url, timeout=60) as client:
        for instance_id in client.get("/instances").json():
            data = client.get(f"/instances/{instance_id}/file").content
            uid = str(pydicom.dcmread(BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
            assert uid not in out, f"SOP Instance UID {uid} is stored twice"
            out[uid] = data
    return out


def statistics(orthanc: OrthancProcess) -> dict[str, object]:
    """Orthanc's own ``/statistics`` (counts and disk size)."""
    result: dict[str, object] = httpx.get(f"{orthanc.url}/statistics", timeout=30).json()
    return result


def served_file(orthanc: OrthancProcess, orthanc_id: str) -> bytes | None:
    """The file Orthanc serves for an instance, or None when it has none."""
    response = httpx.get(f"{orthanc.url}/instances/{orthanc_id}/file", timeout=30)
    return response.content if response.status_code == 200 else None


def delete_instance(orthanc: OrthancProcess, orthanc_id: str) -> None:
    httpx.delete(f"{orthanc.url}/instances/{orthanc_id}", timeout=30).raise_for_status()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
