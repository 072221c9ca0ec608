"""POST /api/ris/upload/dicom/ against a real Orthanc, the real worker pool and patient cache."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicomgate.codec.capabilities import HTJ2K_LOSSLESS
from tests.builders import from_bytes, make_dataset, to_bytes
from tests.ingest.helpers import BOTH_DATABASES, MakePatient, OrthancView
from tests.orthanc_process import OrthancProcess

URL = "/api/ris/upload/dicom/"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def ct(**tags: object) -> Dataset:
    """A small 16-bit CT with non-trivial pixels."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 4096, size=(32, 32), dtype=np.uint16)
    return make_dataset(
        rows=32,
        columns=32,
        pixels=pixels,
        patient_id="OLD-ID",
        patient_name="Old^Name",
        PatientSex="M",
        **tags,
    )


def part(
    data: bytes, name: str = "image.dcm", field: str = "file"
) -> tuple[str, tuple[str, bytes, str]]:
    return (field, (name, data, "application/dicom"))


class TestSingleUpload:
    @BOTH_DATABASES
    async def test_stamps_transcodes_and_stores(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient(family_name="Roe", given_name="Jane", gender="female")
        source = ct()
        upload = to_bytes(source)

        response = await client.post(
            URL, files=[part(upload, "ct.dcm")], data={"patient_id": patient.patient_id}
        )

        assert response.status_code == 201, response.text
        body = response.json()
        assert body["success"] is True
        assert body["message"] == "Uploaded and converted successfully"
        assert body["patient_id"] == patient.patient_id
        assert body["filename"] == "ct.dcm"
        assert body["source_transfer_syntax"] == EXPLICIT_LE
        assert body["stored_transfer_syntax"] == HTJ2K_LOSSLESS
        assert body["original_size"] == len(upload)
        assert body["converted"] is True and body["pass_through_reason"] is None
        answer = body["orthanc_response"]
        assert answer["Status"] == "Success"
        assert answer["Path"] == f"/instances/{answer['ID']}"
        assert set(answer) == {
            "ID",
            "ParentPatient",
            "ParentStudy",
            "ParentSeries",
            "Path",
            "Status",
        }

        # What Orthanc serves back: HTJ2K, stamped, history kept, pixels bit-exact.
        assert stored.transfer_syntax(answer["ID"]) == HTJ2K_LOSSLESS
        served = stored.file(answer["ID"])
        assert body["stored_size"] == len(served)
        assert served[:128] == b"\0" * 128
        ds = from_bytes(served)
        assert ds.PatientID == patient.patient_id
        assert str(ds.PatientName) == "Roe^Jane"
        assert (ds.PatientBirthDate, ds.PatientSex) == ("19700131", "F")
        assert ds.SOPInstanceUID == source.SOPInstanceUID
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        [item] = ds.OriginalAttributesSequence
        [old] = item.ModifiedAttributesSequence
        assert (old.PatientID, str(old.PatientName), old.PatientSex) == ("OLD-ID", "Old^Name", "M")
        assert item.ModifyingSystem == "dicomgate"
        assert item.ReasonForTheAttributeModification == "COERCE"
        assert len(item.AttributeModificationDateTime) >= 14
        np.testing.assert_array_equal(ds.pixel_array, source.pixel_array)
        assert ds.pixel_array.dtype == source.pixel_array.dtype

    async def test_without_patient_keeps_identity(
        self, client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        source = ct()
        response = await client.post(URL, files=[part(to_bytes(source))])
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["patient_id"] == "OLD-ID"
        ds = stored.dataset(body["orthanc_response"]["ID"])
        assert str(ds.PatientName) == "Old^Name"
        assert "OriginalAttributesSequence" not in ds
        np.testing.assert_array_equal(ds.pixel_array, source.pixel_array)

    async def test_same_file_twice_stores_one_instance(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        upload = to_bytes(ct())
        first = await client.post(
            URL, files=[part(upload)], data={"patient_id": patient.patient_id}
        )
        second = await client.post(
            URL, files=[part(upload)], data={"patient_id": patient.patient_id}
        )
        assert (first.status_code, second.status_code) == (201, 201), second.text
        assert second.json()["orthanc_response"]["Status"] == "AlreadyStored"
        assert second.json()["orthanc_response"]["ID"] == first.json()["orthanc_response"]["ID"]
        assert stored.instance_count() == 1

    async def test_pass_through_is_reported(
        self, client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        ds = make_dataset()
        for keyword in (
            "Rows",
            "Columns",
            "SamplesPerPixel",
            "PhotometricInterpretation",
            "BitsAllocated",
            "BitsStored",
            "HighBit",
            "PixelRepresentation",
            "PixelData",
        ):
            delattr(ds, keyword)
        response = await client.post(URL, files=[part(to_bytes(ds), "report.dcm")])
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["converted"] is False
        assert body["pass_through_reason"] == "no_pixel_data"
        assert body["message"] == "Uploaded unchanged: no pixel data to transcode"
        assert body["stored_transfer_syntax"] == EXPLICIT_LE
        assert stored.instance_count() == 1

    async def test_ybr_full_is_kept_for_the_viewers(
        self, client: httpx.AsyncClient, stored: OrthancView, pydicom_data_dir: Path
    ) -> None:
        # OHIF's HTJ2K decoder scrambles 3 components without the colour transform
        # (tests/codec/test_viewer_decoder.py): stored as uploaded, and the answer says why.
        data = (pydicom_data_dir / "SC_ybr_full_uncompressed.dcm").read_bytes()
        response = await client.post(URL, files=[part(data, "ybr.dcm")])
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["converted"], body["pass_through_reason"]) == (False, "ybr_full")
        assert body["message"] == (
            "Uploaded unchanged: YBR_FULL colour (kept until the viewers' HTJ2K decoder can "
            "show it)"
        )
        assert body["stored_transfer_syntax"] == EXPLICIT_LE
        assert stored.instance_count() == 1

    async def test_several_files_give_per_file_results(
        self, client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        files = [
            part(to_bytes(ct()), "a.dcm"),
            part(to_bytes(ct()), "b.dcm", "files"),
            part(b"not dicom at all", "notes.txt"),
        ]
        response = await client.post(URL, files=files)
        assert response.status_code == 202, response.text  # some stored (STOW-RS's convention)
        body = response.json()
        assert body["success"] is False
        assert body["uploaded"] == 2
        assert sorted(r["filename"] for r in body["results"]) == ["a.dcm", "b.dcm"]
        assert body["failed_files"] == [
            {
                "name": "notes.txt",
                "error": "The file is not DICOM (no 'DICM' prefix after the 128-byte preamble)",
                "type": "NotDicom",
            }
        ]
        assert stored.instance_count() == 2

    async def test_large_output_is_streamed_to_orthanc(
        self, client: httpx.AsyncClient, stored: OrthancView, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from dicomgate.ingest import ingestor

        monkeypatch.setattr(ingestor, "STREAM_ABOVE_BYTES", 0)  # stream every file from disk
        source = make_dataset(rows=64, columns=64, frames=3)
        response = await client.post(URL, files=[part(to_bytes(source), "multi.dcm")])
        assert response.status_code == 201, response.text
        body = response.json()
        served = stored.file(body["orthanc_response"]["ID"])
        assert len(served) == body["stored_size"]
        ds = from_bytes(served)
        assert ds.file_meta.TransferSyntaxUID == HTJ2K_LOSSLESS
        np.testing.assert_array_equal(ds.pixel_array, source.pixel_array)


class TestRefusals:
    @BOTH_DATABASES
    async def test_unknown_patient_is_422_and_nothing_stored(
        self, client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        response = await client.post(
            URL, files=[part(to_bytes(ct()))], data={"patient_id": "NO-SUCH-PATIENT"}
        )
        assert response.status_code == 422
        assert response.json() == {
            "success": False,
            "error": "Unknown patient_id 'NO-SUCH-PATIENT': not in the patient cache; "
            "nothing was stored",
            "type": "PatientNotFound",
        }
        assert stored.instance_count() == 0

    @pytest.mark.parametrize(
        ("make", "status", "kind", "message"),
        [
            (lambda: b"", 415, "NotDicom", "The file is empty"),
            (lambda: b"%PDF-1.4 hello" * 30, 415, "NotDicom", "The file is not DICOM"),
            (lambda: to_bytes(ct())[:-700], 400, "InvalidDicom", "truncated"),
            (
                lambda: to_bytes(_without_sop_uid()),
                400,
                "InvalidDicom",
                r"no SOPInstanceUID \(0008,0018\)",
            ),
        ],
        ids=["empty", "not-dicom", "truncated", "no-sop-uid"],
    )
    async def test_bad_files(
        self,
        client: httpx.AsyncClient,
        stored: OrthancView,
        make: object,
        status: int,
        kind: str,
        message: str,
    ) -> None:
        assert callable(make)
        response = await client.post(URL, files=[part(make())])
        assert response.status_code == status, response.text
        body = response.json()
        assert body["success"] is False and body["type"] == kind
        import re

        assert re.search(message, body["error"]), body["error"]
        assert stored.instance_count() == 0

    async def test_truncated_corpus_file(
        self, client: httpx.AsyncClient, stored: OrthancView, corpus_dir: Path
    ) -> None:
        data = (corpus_dir / "MR_truncated.dcm").read_bytes()
        response = await client.post(URL, files=[part(data)])
        assert response.status_code == 400
        assert "truncated" in response.json()["error"]
        assert stored.instance_count() == 0

    async def test_no_file_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(URL, files=[("other", ("x.txt", b"x", "text/plain"))])
        assert response.status_code == 422
        assert response.json()["error"] == "No file was sent: use the multipart field 'file'"

    async def test_not_multipart_is_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            URL, content=b"{}", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["error"] == "The upload must be sent as multipart/form-data"

    async def test_file_over_the_cap_is_413(
        self, small_cap_client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        big = to_bytes(make_dataset(rows=64, columns=64))  # 8 KiB pixels > 4 KiB cap
        response = await small_cap_client.post(URL, files=[part(big, "big.dcm")])
        assert response.status_code == 413
        assert response.json() == {
            "success": False,
            "error": "File 'big.dcm' is larger than the limit of 4096 bytes",
            "type": "UploadTooLarge",
        }
        assert stored.instance_count() == 0

    async def test_too_many_files_is_413(
        self, small_cap_client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        small = to_bytes(make_dataset(rows=4, columns=4))
        response = await small_cap_client.post(
            URL, files=[part(small, f"{i}.dcm") for i in range(4)]
        )
        assert response.status_code == 413
        assert response.json()["error"] == (
            "Too many files: this service accepts at most 3 per request"
        )
        assert stored.instance_count() == 0

    async def test_request_over_the_total_cap_is_413(
        self, small_cap_client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        each = to_bytes(make_dataset(rows=40, columns=40))  # under the 4 KiB file cap
        assert len(each) < 4096 and 3 * len(each) > 10_000
        response = await small_cap_client.post(
            URL, files=[part(each, f"{i}.dcm") for i in range(3)]
        )
        assert response.status_code == 413
        assert response.json()["error"] == (
            "The upload is larger than the limit of 10000 bytes per request"
        )
        assert stored.instance_count() == 0

    async def test_orthanc_down_is_503_then_retry_works(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        upload = to_bytes(ct())
        clean_orthanc.stop()
        try:
            response = await client.post(URL, files=[part(upload)])
        finally:
            clean_orthanc.start()
        assert response.status_code == 503
        body = response.json()
        assert body["type"] == "OrthancUnavailable"
        # The identity check asks Orthanc first (POST /tools/find): nothing was sent.
        assert body["error"] == "Orthanc is unreachable (POST /tools/find)"
        retry = await client.post(URL, files=[part(upload)])
        assert retry.status_code == 201
        assert retry.json()["orthanc_response"]["Status"] == "Success"


def _without_sop_uid() -> Dataset:
    ds = ct()
    del ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


async def test_openapi_documents_the_upload_routes(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    single = schema["paths"]["/api/ris/upload/dicom/"]["post"]
    folder = schema["paths"]["/api/orthanc/upload-patient/"]["post"]
    assert (single["operationId"], folder["operationId"]) == ("uploadDicom", "uploadPatientFolder")
    body = single["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(body) == {"file", "files", "patient_id"}
    folder_body = folder["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert folder_body["required"] == ["patient_id", "files"]
    upload_id = folder_body["properties"]["upload_id"]
    assert (upload_id["minLength"], upload_id["maxLength"]) == (16, 128)
    assert upload_id["pattern"] == "^[A-Za-z0-9._:-]+$"
    assert "Idempotency key" in upload_id["description"]
    assert {"201", "400", "413", "415", "422", "502", "503", "504"} <= set(single["responses"])
    assert "201" in folder["responses"] and "413" in folder["responses"]
