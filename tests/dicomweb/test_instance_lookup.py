"""Frame requests remember where an instance lives in Orthanc (``dicomweb.lookup``), and that
memory never serves what is no longer stored: a conversion in place (by another process, the
CLI) is served with its new transfer syntax and its own bytes; a deleted instance is a 404; an
instance deleted and stored again under another patient is found where it is now.

dicomweb-client and plain requests against dicomgate under uvicorn, and a real Orthanc."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import imagecodecs
import numpy as np
import pytest
import requests
from dicomweb_client import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicomgate.app import create_app
from dicomgate.settings import Settings
from tests.builders import make_dataset, to_bytes
from tests.live_server import serve_in_thread
from tests.orthanc_process import OrthancProcess

EXPLICIT_LE = "1.2.840.10008.1.2.1"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
AS_STORED = (("application/octet-stream", "*"),)


@pytest.fixture
def served(settings: Settings, clean_orthanc: OrthancProcess) -> Iterator[tuple[str, object]]:
    app = create_app(
        settings.model_copy(update={"workers": 1, "resume_conversions_on_start": False})
    )
    with serve_in_thread(app) as url:
        yield url, app


def image(patient_id: str = "P1", **uids: str) -> tuple[Dataset, np.ndarray]:
    pixels = ((np.arange(32 * 48, dtype=np.uint16).reshape(32, 48) * 13) % 4096).astype(np.uint16)
    ds = make_dataset(rows=32, columns=48, pixels=pixels, patient_id=patient_id, **uids)
    return ds, pixels


def frame_as_stored(url: str, ds: Dataset) -> tuple[str, bytes]:
    """Frame 1 as stored: the transfer syntax its part is labelled with, and its bytes."""
    answer = requests.get(
        f"{url}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/1",
        headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
    )
    assert answer.status_code == 200, answer.text
    boundary = answer.headers["Content-Type"].split("boundary=")[1]
    [part] = [p for p in answer.content.split(f"--{boundary}".encode())[1:-1]]
    head, _, body = part.partition(b"\r\n\r\n")
    [content_type] = [
        line for line in head.decode().splitlines() if line.lower().startswith("content-type:")
    ]
    return content_type.split("transfer-syntax=")[1].strip(), body[:-2]


def convert_study(orthanc: OrthancProcess, folder: Path, study_uid: str) -> None:
    """``dicomgate convert-to-htj2k --study``: another process replaces the files in place."""
    env = {
        **os.environ,
        "DICOMGATE_ORTHANC_URL": orthanc.url,
        "DICOMGATE_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'conv.db'}",
        "DICOMGATE_JOURNAL_DIR": str(folder / "journal"),
        "DICOMGATE_WORKERS": "1",
    }
    cli = [sys.executable, "-m", "dicomgate.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, cwd=folder, check=True, capture_output=True)
    done = subprocess.run(
        [*cli, "convert-to-htj2k", "--study", study_uid],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_frame_after_a_conversion_in_place_has_the_new_syntax_and_bytes(
    served: tuple[str, object], clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    url, _ = served
    ds, pixels = image()
    clean_orthanc.store(to_bytes(ds))  # straight into Orthanc: stored uncompressed
    for _ in range(2):  # the second request goes through the remembered Orthanc ID
        assert frame_as_stored(url, ds) == (EXPLICIT_LE, pixels.astype("<u2").tobytes())

    convert_study(clean_orthanc, tmp_path, ds.StudyInstanceUID)

    syntax, codestream = frame_as_stored(url, ds)
    assert syntax == HTJ2K_LOSSLESS
    assert np.array_equal(imagecodecs.htj2k_decode(codestream), pixels)
    client = DICOMwebClient(f"{url}/dicomweb")
    [decoded] = client.retrieve_instance_frames(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, frame_numbers=[1]
    )
    assert decoded == pixels.astype("<u2").tobytes()


def test_a_deleted_instance_is_404_and_one_stored_again_elsewhere_is_found(
    served: tuple[str, object], clean_orthanc: OrthancProcess
) -> None:
    url, _ = served
    uids = {"study_uid": generate_uid(), "series_uid": generate_uid(), "sop_uid": generate_uid()}
    ds, pixels = image("P1", **uids)
    first = clean_orthanc.store(to_bytes(ds))["ID"]
    assert frame_as_stored(url, ds)[0] == EXPLICIT_LE

    httpx.delete(f"{clean_orthanc.url}/instances/{first}").raise_for_status()
    client = DICOMwebClient(f"{url}/dicomweb")
    with pytest.raises(requests.HTTPError) as gone:
        client.retrieve_instance_frames(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, frame_numbers=[1]
        )
    assert gone.value.response.status_code == 404

    # The same UIDs, another patient (so another Orthanc ID), other pixels, through STOW-RS.
    again, _ = image("P2", **uids)
    other = ((pixels[::-1] + 1) % 4096).astype(np.uint16)
    again.PixelData = other.tobytes()
    client.store_instances([again])
    assert frame_as_stored(url, ds)[0] == HTJ2K_LOSSLESS
    [stored] = client.retrieve_instance_frames(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        frame_numbers=[1],
        media_types=AS_STORED,
    )
    assert np.array_equal(imagecodecs.htj2k_decode(stored), other)
