"""POST /api/orthanc/upload-patient/: one study, one series per folder, zips, failures."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pydicom

from dicomgate.codec.capabilities import HTJ2K_LOSSLESS
from tests.builders import make_dataset, to_bytes
from tests.ingest.conftest import MakePatient, OrthancView

URL = "/api/orthanc/upload-patient/"
CORPUS = {"CT": "CT_small.dcm", "MR": "MR_small.dcm", "SC": "SC_rgb_small_odd.dcm"}


def files_part(name: str, data: bytes) -> tuple[str, tuple[str, bytes, str]]:
    return ("files", (name, data, "application/octet-stream"))


def zip_of(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


class TestFolderUpload:
    async def test_three_corpus_series_become_one_study(
        self,
        client: httpx.AsyncClient,
        stored: OrthancView,
        make_patient: MakePatient,
        corpus_dir: Path,
    ) -> None:
        patient = await make_patient(family_name="Kim", given_name="Min", gender="male")
        sources = {k: (corpus_dir / v).read_bytes() for k, v in CORPUS.items()}
        extra_ct = to_bytes(make_dataset(rows=16, columns=16))
        files = [
            files_part("ct1.dcm", sources["CT"]),
            files_part("mr1.dcm", sources["MR"]),
            files_part("ct2.dcm", extra_ct),
            files_part("sc1.dcm", sources["SC"]),
        ]
        paths = ["exam/CT chest", "exam/MR head", "exam/CT chest", "exam/Screens"]

        response = await client.post(
            URL,
            files=files,
            data={
                "patient_id": patient.patient_id,
                "study_description": "Mixed exam",
                "series_path": paths,
            },
        )

        assert response.status_code == 201, response.text
        body = response.json()
        assert body["patientId"] == patient.patient_id
        assert body["studyDescription"] == "Mixed exam"
        assert body["uploaded"] == 4 and body["failedFiles"] == []
        studies = stored.get("/studies")
        assert studies == [body["studyId"]]
        study = stored.get(f"/studies/{body['studyId']}")
        assert study["MainDicomTags"]["StudyInstanceUID"] == body["studyUid"]
        assert study["MainDicomTags"]["StudyDescription"] == "Mixed exam"
        assert study["PatientMainDicomTags"]["PatientID"] == patient.patient_id
        assert sorted(study["Series"]) == sorted(body["orthancSeriesIds"])
        series = [stored.get(f"/series/{sid}") for sid in body["orthancSeriesIds"]]
        assert [s["MainDicomTags"]["SeriesNumber"] for s in series] == ["1", "2", "3"]
        assert [s["MainDicomTags"]["SeriesDescription"] for s in series] == [
            "CT chest",
            "MR head",
            "Screens",
        ]
        assert [len(s["Instances"]) for s in series] == [2, 1, 1]

        # The stored CT: same SOP Instance UID and pixels, new study identity, demographics.
        original = pydicom.dcmread(io.BytesIO(sources["CT"]))
        [ct_id] = [
            i
            for i in series[0]["Instances"]
            if stored.get(f"/instances/{i}/simplified-tags")["SOPInstanceUID"]
            == original.SOPInstanceUID
        ]
        assert stored.transfer_syntax(ct_id) == HTJ2K_LOSSLESS
        ds = stored.dataset(ct_id)
        assert ds.StudyInstanceUID == body["studyUid"] != original.StudyInstanceUID
        assert (ds.PatientID, str(ds.PatientName), ds.PatientSex) == (
            patient.patient_id,
            "Kim^Min",
            "M",
        )
        np.testing.assert_array_equal(ds.pixel_array, original.pixel_array)
        [item] = ds.OriginalAttributesSequence
        [old] = item.ModifiedAttributesSequence
        assert old.StudyInstanceUID == original.StudyInstanceUID
        assert old.SeriesInstanceUID == original.SeriesInstanceUID
        assert old.PatientID == original.PatientID
        assert item.ReasonForTheAttributeModification == "COERCE"

    async def test_no_series_path_is_one_series(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        files = [
            files_part(f"{i}.dcm", to_bytes(make_dataset(rows=8, columns=8))) for i in range(3)
        ]
        response = await client.post(URL, files=files, data={"patient_id": patient.patient_id})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["uploaded"] == 3 and len(body["orthancSeriesIds"]) == 1
        assert stored.get("/series") == body["orthancSeriesIds"]

    async def test_zip_folders_become_series_and_unsafe_names_are_refused(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        archive = zip_of(
            {
                "study/axial/1.dcm": to_bytes(make_dataset()),
                "study/axial/2.dcm": to_bytes(make_dataset()),
                "study/coronal/1.dcm": to_bytes(make_dataset()),
                "../../evil.dcm": to_bytes(make_dataset()),
                "/abs.dcm": to_bytes(make_dataset()),
                "__MACOSX/study/._1.dcm": b"resource fork",
            }
        )
        response = await client.post(
            URL,
            files=[files_part("upload.zip", archive)],
            data={"patient_id": patient.patient_id, "study_description": "Zipped"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["uploaded"] == 3
        assert body["failedFiles"] == [
            {"name": "upload.zip/../../evil.dcm", "error": "Refused: '..' in the archive path"},
            {"name": "upload.zip//abs.dcm", "error": "Refused: absolute path in the archive"},
        ]
        descriptions = [
            stored.get(f"/series/{s}")["MainDicomTags"]["SeriesDescription"]
            for s in body["orthancSeriesIds"]
        ]
        assert descriptions == ["axial", "coronal"]
        assert stored.instance_count() == 3

    async def test_zip_bomb_refused_rest_stored(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        bomb = zip_of({"bomb.dcm": b"\0" * (30 * 1024 * 1024)}, compression=zipfile.ZIP_DEFLATED)
        assert len(bomb) < 100 * 1024
        response = await client.post(
            URL,
            files=[files_part("bomb.zip", bomb), files_part("good.dcm", to_bytes(make_dataset()))],
            data={"patient_id": patient.patient_id},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["uploaded"] == 1
        assert body["failedFiles"] == [
            {
                "name": "bomb.zip",
                "error": "Zip entry 'bomb.dcm' expands more than 200× (refused as a zip bomb)",
            }
        ]
        assert stored.instance_count() == 1

    async def test_bad_files_listed_rest_stored(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        response = await client.post(
            URL,
            files=[
                files_part("readme.txt", b"hello" * 50),
                files_part("ok.dcm", to_bytes(make_dataset())),
                files_part("cut.dcm", to_bytes(make_dataset(rows=16, columns=16))[:-50]),
            ],
            data={"patient_id": patient.patient_id},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["uploaded"] == 1
        assert [f["name"] for f in body["failedFiles"]] == ["readme.txt", "cut.dcm"]
        assert "not DICOM" in body["failedFiles"][0]["error"]
        assert "truncated" in body["failedFiles"][1]["error"]
        assert stored.instance_count() == 1


class TestFolderRefusals:
    async def test_unknown_patient_is_422_and_nothing_stored(
        self, client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        response = await client.post(
            URL,
            files=[files_part("a.dcm", to_bytes(make_dataset()))],
            data={"patient_id": "NOBODY", "series_path": ["x"]},
        )
        assert response.status_code == 422
        assert response.json()["type"] == "PatientNotFound"
        assert stored.instance_count() == 0

    async def test_mismatched_series_paths_is_422(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        response = await client.post(
            URL,
            files=[
                files_part("a.dcm", to_bytes(make_dataset())),
                files_part("b.dcm", to_bytes(make_dataset())),
            ],
            data={"patient_id": patient.patient_id, "series_path": ["one"]},
        )
        assert response.status_code == 422
        assert response.json()["error"] == (
            "1 series_path values for 2 files: send one per file, or none for a single series"
        )
        assert stored.instance_count() == 0

    async def test_missing_patient_id_is_422(
        self, client: httpx.AsyncClient, stored: OrthancView
    ) -> None:
        response = await client.post(URL, files=[files_part("a.dcm", to_bytes(make_dataset()))])
        assert response.status_code == 422
        assert response.json()["error"] == "patient_id is required for a folder upload"
        assert stored.instance_count() == 0

    async def test_nothing_storable_is_422(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        response = await client.post(
            URL,
            files=[files_part("x.txt", b"plain text" * 20)],
            data={"patient_id": patient.patient_id},
        )
        assert response.status_code == 422
        assert response.json()["error"].startswith("No file was stored: x.txt: The file is not")
        assert stored.instance_count() == 0

    async def test_too_many_files_after_zip_expansion_is_413(
        self,
        small_cap_client: httpx.AsyncClient,
        stored: OrthancView,
        make_patient: MakePatient,
    ) -> None:
        patient = await make_patient()
        tiny = to_bytes(make_dataset(rows=2, columns=2))
        archive = zip_of({f"s/{i}.dcm": tiny for i in range(3)}, compression=zipfile.ZIP_DEFLATED)
        response = await small_cap_client.post(
            URL,
            files=[files_part("a.zip", archive), files_part("b.dcm", tiny)],
            data={"patient_id": patient.patient_id},
        )
        assert response.status_code == 413
        assert response.json()["error"] == (
            "Too many files after expanding zips: 4; the limit is 3"
        )
        assert stored.instance_count() == 0
