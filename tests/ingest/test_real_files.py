"""Real files the codec once turned away or mislabelled, through the upload route (issue 17).

Padded Pixel Data (pydicom's ``MR_small_padded.dcm``) is stored with its pixels untouched and
the reason said.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.builders import from_bytes, make_dataset, to_bytes
from tests.ingest.helpers import MakePatient, OrthancView

URL = "/api/ris/upload/dicom/"
PADDED_TEXT = "Pixel Data longer than its frames (the padding is kept as it is)"


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
