"""After a series' metadata, a viewer's frame request costs one Orthanc call (``framesource``):
the stored file, whose attachment UUID comes in the same answer. A file replaced since —
straight in Orthanc, with another encoding and other pixels — is never served under the old
file's label: its frame has its own syntax and bytes. The audit row names the instance.

dicomweb-client and plain requests against dicomgate under uvicorn, and a real Orthanc."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
from tests.dicomweb.test_instance_lookup import EXPLICIT_LE, HTJ2K_LOSSLESS, frame_as_stored
from tests.live_server import serve_in_thread
from tests.orthanc_calls import record_orthanc_calls
from tests.orthanc_process import OrthancProcess


@pytest.fixture
def served(settings: Settings, clean_orthanc: OrthancProcess) -> Iterator[tuple[str, Any]]:
    app = create_app(
        settings.model_copy(update={"workers": 1, "resume_conversions_on_start": False})
    )
    with serve_in_thread(app) as url:
        yield url, app


def series(count: int, seed: int) -> tuple[list[Dataset], list[np.ndarray]]:
    study, series_uid = generate_uid(), generate_uid()
    datasets, images = [], []
    for number in range(count):
        pixels = ((np.arange(24 * 40).reshape(24, 40) * (seed + number)) % 4096).astype(np.uint16)
        ds = make_dataset(
            rows=24,
            columns=40,
            pixels=pixels,
            study_uid=study,
            series_uid=series_uid,
            sop_uid=generate_uid(),
            instance_number=number + 1,
        )
        datasets.append(ds)
        images.append(pixels)
    return datasets, images


def metadata(url: str, ds: Dataset) -> None:
    client = DICOMwebClient(f"{url}/dicomweb")
    client.retrieve_series_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID)


def orthanc_calls(app: Any) -> list[str]:
    """Every request dicomgate sends to Orthanc from now on (method and path)."""
    runtime = app.state.runtime
    assert runtime.files is not None  # Orthanc is plain http:// here
    return record_orthanc_calls(runtime)


def test_after_the_metadata_each_frame_is_one_orthanc_call(
    served: tuple[str, Any], clean_orthanc: OrthancProcess
) -> None:
    url, app = served
    datasets, images = series(3, seed=5)
    DICOMwebClient(f"{url}/dicomweb").store_instances(datasets)  # stored as HTJ2K
    metadata(url, datasets[0])
    calls = orthanc_calls(app)
    for ds, pixels in zip(datasets, images, strict=True):
        syntax, codestream = frame_as_stored(url, ds)
        assert syntax == HTJ2K_LOSSLESS
        assert np.array_equal(imagecodecs.htj2k_decode(codestream), pixels)
    assert len(calls) == 3
    assert all(c.endswith("/attachments/dicom/data") for c in calls)
    # Decoded to native little endian from the same one call (the worker pool decodes it).
    calls.clear()
    client = DICOMwebClient(f"{url}/dicomweb")
    [plain] = client.retrieve_instance_frames(
        datasets[1].StudyInstanceUID,
        datasets[1].SeriesInstanceUID,
        datasets[1].SOPInstanceUID,
        frame_numbers=[1],
    )
    assert plain == images[1].astype("<u2").tobytes()
    assert len(calls) == 1


def test_a_file_replaced_in_orthanc_is_served_with_its_own_label_and_bytes(
    served: tuple[str, Any], clean_orthanc: OrthancProcess
) -> None:
    url, _ = served
    [ds], [pixels] = series(1, seed=7)
    first = clean_orthanc.store(to_bytes(ds))["ID"]  # uncompressed, straight into Orthanc
    metadata(url, ds)
    assert frame_as_stored(url, ds) == (EXPLICIT_LE, pixels.astype("<u2").tobytes())

    # Replaced behind dicomgate's back: same UIDs and patient (so the same Orthanc ID), now
    # HTJ2K (through STOW-RS) with other pixels.
    httpx.delete(f"{clean_orthanc.url}/instances/{first}").raise_for_status()
    other = ((pixels[::-1] + 3) % 4096).astype(np.uint16)
    ds.PixelData = other.tobytes()
    DICOMwebClient(f"{url}/dicomweb").store_instances([ds])
    syntax, codestream = frame_as_stored(url, ds)
    assert syntax == HTJ2K_LOSSLESS
    assert np.array_equal(imagecodecs.htj2k_decode(codestream), other)


def test_the_audit_row_of_a_one_call_frame_names_the_instance(
    served: tuple[str, Any], clean_orthanc: OrthancProcess
) -> None:
    url, app = served
    [ds], _ = series(1, seed=9)
    stored = clean_orthanc.store(to_bytes(ds))["ID"]
    metadata(url, ds)
    calls = orthanc_calls(app)
    frame_as_stored(url, ds)
    assert len(calls) == 1
    answer = requests.get(
        f"{url}/api/ris/audit/", params={"study_instance_uid": ds.StudyInstanceUID}
    )
    answer.raise_for_status()
    [row] = [e for e in answer.json()["events"] if e["resource"].get("frame_list") == "1"]
    assert row["status_code"] == 200
    resource = row["resource"]
    assert resource["sop_instance_uids"] == [ds.SOPInstanceUID]
    assert resource["orthanc_ids"] == [stored]
    assert resource["patient_ids"] == [ds.PatientID]


def labelled_syntaxes(url: str, ds: Dataset) -> list[str]:
    client = DICOMwebClient(f"{url}/dicomweb")
    found = client.retrieve_series_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID)
    return [m["00020010"]["Value"][0] for m in found]


def test_the_metadata_of_files_dicomgate_stored_reads_no_header(
    served: tuple[str, Any], clean_orthanc: OrthancProcess
) -> None:
    """Their syntax is the one recorded for the very file (by attachment UUID): no header read
    per instance. A series stored straight into Orthanc still has its headers read."""
    url, app = served
    datasets, _ = series(6, seed=11)
    DICOMwebClient(f"{url}/dicomweb").store_instances(datasets)
    calls = orthanc_calls(app)
    assert labelled_syntaxes(url, datasets[0]) == [HTJ2K_LOSSLESS] * 6
    assert not [c for c in calls if c.endswith("/header")]

    others, _ = series(6, seed=12)
    for ds in others:
        clean_orthanc.store(to_bytes(ds))
    calls.clear()
    assert labelled_syntaxes(url, others[0]) == [EXPLICIT_LE] * 6
    assert any(c.endswith("/header") or c == "POST /tools/bulk-content" for c in calls)


def test_a_recorded_syntax_is_never_used_for_a_file_replaced_behind_dicomgate(
    served: tuple[str, Any], clean_orthanc: OrthancProcess
) -> None:
    url, _ = served
    datasets, images = series(1, seed=13)
    DICOMwebClient(f"{url}/dicomweb").store_instances(datasets)  # HTJ2K, recorded
    [ds], [pixels] = datasets, images
    [found] = httpx.post(
        f"{clean_orthanc.url}/tools/find",
        json={"Level": "Instance", "Query": {"SOPInstanceUID": ds.SOPInstanceUID}},
    ).json()
    httpx.delete(f"{clean_orthanc.url}/instances/{found}").raise_for_status()
    clean_orthanc.store(to_bytes(ds))  # the same instance, uncompressed, straight into Orthanc
    assert labelled_syntaxes(url, ds) == [EXPLICIT_LE]
    assert frame_as_stored(url, ds) == (EXPLICIT_LE, pixels.astype("<u2").tobytes())
