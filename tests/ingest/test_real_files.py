"""Real files the codec once turned away or mislabelled, through the upload route (issue 17).

Padded Pixel Data (pydicom's ``MR_small_padded.dcm``) is stored with its pixels untouched and
the reason said; a SOP Instance UID that is not a UID (pydicom-data's ``bad_sequence.dcm``) is
refused, naming the attribute, and nothing is stored.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import httpx
from pydicom.dataset import Dataset

from tests.builders import from_bytes, make_dataset, to_bytes
from tests.ingest.helpers import MakePatient, OrthancView

URL = "/api/ris/upload/dicom/"
PADDED_TEXT = "Pixel Data longer than its frames (the padding is kept as it is)"


def as_written(ds: Dataset) -> bytes:
    """A Part 10 file with the file meta as set (pydicom's enforced writing would rewrite its
    Media Storage UIDs from the dataset, hiding what these tests send)."""
    buffer = BytesIO()
    ds.preamble = b"\0" * 128
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def part(data: bytes, name: str = "image.dcm") -> tuple[str, tuple[str, bytes, str]]:
    return ("file", (name, data, "application/dicom"))


class TestPaddedPixelData:
    async def test_stored_untouched_with_the_reason(
        self, client: httpx.AsyncClient, stored: OrthancView, corpus_dir: Path
    ) -> None:
        data = (corpus_dir / "MR_small_padded.dcm").read_bytes()
        source = from_bytes(data)
        assert len(source.PixelData) == 64 * 64 * 2 + 128  # the frame, then 128 bytes

        response = await client.post(URL, files=[part(data, "padded.dcm")])

        assert response.status_code == 201, response.text
        body = response.json()
        assert body["converted"] is False
        assert body["pass_through_reason"] == "padded_pixel_data"
        assert body["message"] == f"Uploaded unchanged: {PADDED_TEXT}"
        assert body["stored_transfer_syntax"] == body["source_transfer_syntax"]
        assert stored.instance_count() == 1
        kept = stored.dataset(body["orthanc_response"]["ID"])
        assert kept.PixelData == source.PixelData  # the padding too, byte for byte
        assert kept.SOPInstanceUID == source.SOPInstanceUID

    async def test_stamped_for_a_patient_keeps_the_pixels(
        self,
        client: httpx.AsyncClient,
        stored: OrthancView,
        make_patient: MakePatient,
    ) -> None:
        patient = await make_patient(family_name="Pad", given_name="Ded")
        ds = make_dataset(rows=8, columns=8)
        ds.PixelData += b"\x5a" * 64
        data = to_bytes(ds)

        response = await client.post(
            URL, files=[part(data)], data={"patient_id": patient.patient_id}
        )

        assert response.status_code == 201, response.text
        assert response.json()["pass_through_reason"] == "padded_pixel_data"
        kept = stored.dataset(response.json()["orthanc_response"]["ID"])
        assert kept.PatientID == patient.patient_id
        assert kept.PixelData == ds.PixelData

    async def test_truncated_stays_refused(
        self, client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        ds = make_dataset(rows=8, columns=8)
        ds.PixelData = ds.PixelData[:-2]
        response = await client.post(URL, files=[part(to_bytes(ds))])
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith("The DICOM file is truncated: Pixel Data is")
        assert stored.instance_count() == 0


class TestIdentityUids:
    async def test_a_sop_instance_uid_that_is_not_a_uid_is_refused(
        self, client: httpx.AsyncClient, stored: OrthancView, pydicom_data_dir: Path
    ) -> None:
        data = (pydicom_data_dir / "bad_sequence.dcm").read_bytes()
        response = await client.post(URL, files=[part(data)])
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["type"] == "InvalidDicom"
        assert body["error"] == (
            "The DICOM file's SOPInstanceUID (0008,0018) is not a UID: "
            "'dccc9599087131742838cc1162a630fea87ba9bf61ac09bfda90d4adfa5ddaed'"
        )
        assert stored.instance_count() == 0

    async def test_a_file_meta_uid_that_is_not_a_uid_is_refused(
        self, client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        ds = make_dataset()
        ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.abc"
        response = await client.post(URL, files=[part(as_written(ds))])
        assert response.status_code == 400, response.text
        assert response.json()["error"] == (
            "The DICOM file's MediaStorageSOPInstanceUID (0002,0003) is not a UID: "
            "'1.2.826.0.1.abc'"
        )
        assert stored.instance_count() == 0

    async def test_when_file_meta_and_dataset_disagree_the_dataset_is_stored(
        self, client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        """PS3.10 §7.1: the meta copies the dataset; dicomgate writes it afresh from it."""
        ds = make_dataset(rows=8, columns=8)
        ds.file_meta.MediaStorageSOPInstanceUID = "1.2.999.999.99.9.9999.9999.20030903150023"
        data = as_written(ds)
        assert from_bytes(data).file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID
        response = await client.post(URL, files=[part(data)])
        assert response.status_code == 201, response.text
        assert response.json()["converted"] is True
        kept = stored.dataset(response.json()["orthanc_response"]["ID"])
        assert kept.SOPInstanceUID == ds.SOPInstanceUID
        assert kept.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
