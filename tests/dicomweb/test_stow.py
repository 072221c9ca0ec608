"""STOW-RS (POST /dicomweb/studies[/{study}]) with dicomweb-client against dicomgate under
uvicorn, the real worker pool and a real Orthanc."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pydicom
import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicomgate.app import create_app
from dicomgate.codec.capabilities import HTJ2K_LOSSLESS
from dicomgate.settings import Settings
from tests.builders import make_dataset, to_bytes
from tests.dicomweb.helpers import MAX_PART_BYTES, MAX_PARTS, StoredView, Stow
from tests.orthanc_process import OrthancProcess

CANNOT_UNDERSTAND = 0xC000
STUDY_MISMATCH = 0xC409
BOUNDARY = "dicomgate-test-7d1c"


def corpus(corpus_dir: Path, pydicom_data_dir: Path) -> list[Dataset]:
    """A greyscale CT, an 8-bit RGB image and a 10-frame MR: what other services send."""
    return [
        pydicom.dcmread(corpus_dir / "CT_small.dcm"),
        pydicom.dcmread(pydicom_data_dir / "SC_rgb.dcm"),
        pydicom.dcmread(pydicom_data_dir / "emri_small.dcm"),
    ]


def related(
    parts: list[tuple[bytes, str | None]], *, type_param: str | None = '"application/dicom"'
) -> tuple[bytes, str]:
    """A hand-made multipart/related body (for what dicomweb-client will not send)."""
    chunks: list[bytes] = []
    for data, content_type in parts:
        header = f"--{BOUNDARY}\r\n"
        if content_type is not None:
            header += f"Content-Type: {content_type}\r\n"
        chunks += [(header + "\r\n").encode(), data, b"\r\n"]
    chunks.append(f"--{BOUNDARY}--\r\n".encode())
    media_type = "multipart/related"
    if type_param is not None:
        media_type += f"; type={type_param}"
    return b"".join(chunks), f"{media_type}; boundary={BOUNDARY}"


def post(stow: Stow, body: bytes, content_type: str, path: str = "/studies") -> requests.Response:
    return stow.session.post(stow.url + path, data=body, headers={"Content-Type": content_type})


def referenced(result: Dataset) -> list[str]:
    return [item.ReferencedSOPInstanceUID for item in result.get("ReferencedSOPSequence", [])]


class TestStore:
    def test_corpus_files_are_stored_as_htj2k_with_the_same_pixels(
        self, stow: Stow, orthanc_view: StoredView, corpus_dir: Path, pydicom_data_dir: Path
    ) -> None:
        originals = corpus(corpus_dir, pydicom_data_dir)

        result = stow.client.store_instances(originals)

        assert stow.statuses == [200]
        assert referenced(result) == [ds.SOPInstanceUID for ds in originals]
        assert [i.ReferencedSOPClassUID for i in result.ReferencedSOPSequence] == [
            ds.SOPClassUID for ds in originals
        ]
        assert "FailedSOPSequence" not in result
        # Each item's Retrieve URL is its WADO-RS instance URL; three studies: no study URL.
        # (dicomweb-client sends "Host: 127.0.0.1" without the port: compare the paths.)
        assert result.RetrieveURL == ""
        assert [urlsplit(i.RetrieveURL).path for i in result.ReferencedSOPSequence] == [
            f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}"
            for ds in originals
        ]
        assert all("WarningReason" not in i for i in result.ReferencedSOPSequence)
        assert orthanc_view.instance_count() == len(originals)
        for original in originals:
            instance_id = orthanc_view.instance_id(original.SOPInstanceUID)
            assert orthanc_view.transfer_syntax(instance_id) == HTJ2K_LOSSLESS
            served = orthanc_view.dataset(instance_id)
            # No patient stamping on STOW: the instance keeps its identity.
            assert (served.PatientID, served.StudyInstanceUID) == (
                original.PatientID,
                original.StudyInstanceUID,
            )
            assert "OriginalAttributesSequence" not in served
            assert served.get("NumberOfFrames", 1) == original.get("NumberOfFrames", 1)
            np.testing.assert_array_equal(served.pixel_array, original.pixel_array)

    def test_datasets_built_in_memory_are_stored(
        self, stow: Stow, orthanc_view: StoredView
    ) -> None:
        # pydicom writes a Dataset without a preamble: dicomweb-client sends its file meta
        # first, without the 128 bytes and 'DICM' of PS3.10 §7.1. dicomgate adds them.
        built = make_dataset(rows=16, columns=16)
        assert not hasattr(built, "preamble")

        result = stow.client.store_instances([built])

        assert stow.statuses == [200]
        assert referenced(result) == [built.SOPInstanceUID]
        served = orthanc_view.dataset(orthanc_view.instance_id(built.SOPInstanceUID))
        np.testing.assert_array_equal(served.pixel_array, built.pixel_array)

    def test_same_request_twice_stores_each_instance_once(
        self, stow: Stow, orthanc_view: StoredView, corpus_dir: Path, pydicom_data_dir: Path
    ) -> None:
        originals = corpus(corpus_dir, pydicom_data_dir)[:2]

        first = stow.client.store_instances(originals)
        second = stow.client.store_instances(originals)

        assert stow.statuses == [200, 200]
        assert referenced(first) == referenced(second) == [ds.SOPInstanceUID for ds in originals]
        assert orthanc_view.instance_count() == 2

    def test_unquoted_type_parameter_is_accepted(
        self, stow: Stow, orthanc_view: StoredView, corpus_dir: Path
    ) -> None:
        body, content_type = related(
            [((corpus_dir / "CT_small.dcm").read_bytes(), "application/dicom")],
            type_param="application/dicom",
        )
        response = post(stow, body, content_type)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/dicom+json"
        assert orthanc_view.instance_count() == 1


class TestPartialFailure:
    def test_bad_parts_fail_alone_and_the_rest_is_stored(
        self, stow: Stow, orthanc_view: StoredView, corpus_dir: Path
    ) -> None:
        ct = (corpus_dir / "CT_small.dcm").read_bytes()
        mr = (corpus_dir / "MR_small.dcm").read_bytes()
        body, content_type = related(
            [
                (ct, "application/dicom"),
                (b"this is a PDF, not DICOM", "application/dicom"),
                (mr, "text/plain"),  # DICOM bytes, but not declared application/dicom
            ]
        )

        response = post(stow, body, content_type)

        assert response.status_code == 202, response.text
        result = Dataset.from_json(response.json())
        assert referenced(result) == [pydicom.dcmread(corpus_dir / "CT_small.dcm").SOPInstanceUID]
        failed = result.FailedSOPSequence
        assert [item.FailureReason for item in failed] == [CANNOT_UNDERSTAND, CANNOT_UNDERSTAND]
        # What could not be read is named by empty UIDs, not by invented ones.
        assert all(i.ReferencedSOPInstanceUID == "" for i in failed)
        assert orthanc_view.instance_count() == 1

    def test_a_corrupt_instance_is_named_in_the_failed_sequence(
        self, stow: Stow, orthanc_view: StoredView
    ) -> None:
        good = make_dataset()
        truncated = make_dataset(rows=32, columns=32)
        truncated.PixelData = truncated.PixelData[:100]  # cut off: 32×32×2 bytes expected

        result = stow.client.store_instances([good, truncated])

        assert stow.statuses == [202]
        assert referenced(result) == [good.SOPInstanceUID]
        [failed] = result.FailedSOPSequence
        assert failed.ReferencedSOPInstanceUID == truncated.SOPInstanceUID
        assert failed.ReferencedSOPClassUID == truncated.SOPClassUID
        assert failed.FailureReason == CANNOT_UNDERSTAND
        assert orthanc_view.sop_instance_uids() == {good.SOPInstanceUID}


class TestStudyUrl:
    def test_instances_of_other_studies_are_refused_and_not_stored(
        self, stow: Stow, orthanc_view: StoredView
    ) -> None:
        study = generate_uid()
        ours = [make_dataset(study_uid=study), make_dataset(study_uid=study)]
        other = make_dataset(study_uid=generate_uid())

        result = stow.client.store_instances([ours[0], other, ours[1]], study_instance_uid=study)

        assert stow.statuses == [202]
        assert referenced(result) == [ds.SOPInstanceUID for ds in ours]
        [failed] = result.FailedSOPSequence
        assert failed.ReferencedSOPInstanceUID == other.SOPInstanceUID
        assert failed.ReferencedSOPClassUID == other.SOPClassUID
        assert failed.FailureReason == STUDY_MISMATCH
        assert orthanc_view.sop_instance_uids() == {ds.SOPInstanceUID for ds in ours}

    def test_only_other_studies_is_409_with_the_response_module(
        self, stow: Stow, orthanc_view: StoredView
    ) -> None:
        others = [make_dataset(), make_dataset()]

        with pytest.raises(requests.HTTPError) as raised:
            stow.client.store_instances(others, study_instance_uid=generate_uid())

        response = raised.value.response
        assert response.status_code == 409
        assert response.headers["Content-Type"] == "application/dicom+json"
        result = Dataset.from_json(response.json())
        assert "ReferencedSOPSequence" not in result
        assert [
            (i.ReferencedSOPInstanceUID, i.FailureReason) for i in result.FailedSOPSequence
        ] == [(ds.SOPInstanceUID, STUDY_MISMATCH) for ds in others]
        assert orthanc_view.instance_count() == 0

    def test_a_study_that_is_no_uid_is_400(self, stow: Stow, orthanc_view: StoredView) -> None:
        with pytest.raises(requests.HTTPError) as raised:
            stow.client.store_instances([make_dataset()], study_instance_uid="not-a-uid")
        response = raised.value.response
        assert response.status_code == 400
        assert response.json() == {
            "success": False,
            "error": "'not-a-uid' is not a Study Instance UID",
            "type": "BadRequest",
        }
        assert orthanc_view.instance_count() == 0


class TestRefusedRequests:
    @pytest.mark.parametrize(
        ("content_type", "message"),
        [
            ("application/dicom+json", "metadata and bulk data"),
            (f'multipart/related; type="application/dicom+xml"; boundary={BOUNDARY}', "metadata"),
            (f"multipart/related; boundary={BOUNDARY}", "no type parameter"),
            (f'multipart/related; type="image/jpeg"; boundary={BOUNDARY}', 'type="image/jpeg"'),
            (f"multipart/form-data; boundary={BOUNDARY}", "this one is multipart/form-data"),
            ("application/dicom", "this one is application/dicom"),
        ],
    )
    def test_other_media_types_are_415_and_nothing_is_stored(
        self,
        stow: Stow,
        orthanc_view: StoredView,
        corpus_dir: Path,
        content_type: str,
        message: str,
    ) -> None:
        body, _ = related([((corpus_dir / "CT_small.dcm").read_bytes(), "application/dicom")])

        response = post(stow, body, content_type)

        assert response.status_code == 415, response.text
        error = response.json()
        assert (error["success"], error["type"]) == (False, "UnsupportedMediaType")
        assert message in error["error"]
        assert orthanc_view.instance_count() == 0

    def test_no_parts_is_400(self, stow: Stow, orthanc_view: StoredView) -> None:
        body, content_type = related([])
        response = post(stow, body, content_type)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == (
            "The STOW-RS request holds no parts: send one application/dicom part per instance"
        )

    def test_a_part_over_the_cap_is_413_and_nothing_is_stored(
        self, stow: Stow, orthanc_view: StoredView
    ) -> None:
        small = make_dataset()
        big = make_dataset(rows=320, columns=320)  # 204,800 bytes of pixels alone
        assert len(to_bytes(big)) > MAX_PART_BYTES

        with pytest.raises(requests.HTTPError) as raised:
            stow.client.store_instances([small, big])

        response = raised.value.response
        assert response.status_code == 413
        error = response.json()
        assert error["type"] == "UploadTooLarge"
        # The part is refused as it streams in, before the first one reaches a worker.
        assert error["error"] == (
            f"File 'part-0002' is larger than the limit of {MAX_PART_BYTES} bytes"
        )
        assert orthanc_view.instance_count() == 0

    def test_too_many_parts_is_413_and_nothing_is_stored(
        self, stow: Stow, orthanc_view: StoredView
    ) -> None:
        with pytest.raises(requests.HTTPError) as raised:
            stow.client.store_instances([make_dataset() for _ in range(MAX_PARTS + 1)])
        response = raised.value.response
        assert response.status_code == 413
        assert response.json()["error"] == (
            f"Too many files: this service accepts at most {MAX_PARTS} per request"
        )
        assert orthanc_view.instance_count() == 0


class TestOrthancDown:
    def test_503_then_a_retrying_client_stores_once(
        self, stow: Stow, orthanc_view: StoredView, orthanc: OrthancProcess
    ) -> None:
        instances = [make_dataset(), make_dataset()]
        stow.client.set_http_retry_params(retry=False)
        orthanc.stop()
        try:
            with pytest.raises(requests.HTTPError) as raised:
                stow.client.store_instances(instances)
        finally:
            orthanc.start()
        response = raised.value.response
        assert response.status_code == 503
        assert response.json()["type"] == "OrthancUnavailable"

        # dicomweb-client retries a 503 (by default): Orthanc comes back while it waits.
        stow.client.set_http_retry_params(
            retry=True, max_attempts=6, wait_exponential_multiplier=250
        )
        orthanc.stop()
        restart = threading.Timer(1.0, orthanc.start)
        restart.start()
        try:
            result = stow.client.store_instances(instances)
        finally:
            restart.join()
        assert stow.statuses[0] == 503 and stow.statuses[-1] == 200
        assert 503 in stow.statuses[1:-1]
        assert referenced(result) == [ds.SOPInstanceUID for ds in instances]
        assert orthanc_view.sop_instance_uids() == {ds.SOPInstanceUID for ds in instances}


class TestLossyMode:
    async def test_new_uid_is_a_coercion_warning_naming_the_uid_sent(
        self, settings: Settings, orthanc_view: StoredView, corpus_dir: Path
    ) -> None:
        lossy = settings.model_copy(update={"lossy_quality": 90.0, "workers": 1})
        application = create_app(lossy)
        sent = pydicom.dcmread(corpus_dir / "CT_small.dcm")
        body, content_type = related([((corpus_dir / "CT_small.dcm").read_bytes(), None)])
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                response = await client.post(
                    "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
                )
                retry = await client.post(  # the client lost the first answer
                    "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
                )

        assert response.status_code == 202, response.text
        [item] = Dataset.from_json(response.json()).ReferencedSOPSequence
        [again] = Dataset.from_json(retry.json()).ReferencedSOPSequence
        # The derivative's UID is derived, not random: the retry is the same instance.
        assert again.ReferencedSOPInstanceUID == item.ReferencedSOPInstanceUID
        assert item.WarningReason == 0xB000
        assert item.ReferencedSOPInstanceUID != sent.SOPInstanceUID
        [original] = item.OriginalAttributesSequence
        assert original.ModifiedAttributesSequence[0].SOPInstanceUID == sent.SOPInstanceUID
        assert orthanc_view.sop_instance_uids() == {item.ReferencedSOPInstanceUID}
