"""POST /api/orthanc/upload-patient/: one study, one series per folder, zips, failures."""

from __future__ import annotations

import datetime
import io
import re
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from fastapi import FastAPI

from dicomgate.codec.capabilities import HTJ2K_LOSSLESS
from dicomgate.ingest import service
from dicomgate.ingest.idempotency import instance_uid_for, series_uid_for, study_uid_for
from dicomgate.patients.service import get_patient
from tests.builders import make_dataset, to_bytes
from tests.ingest.helpers import BOTH_DATABASES, MakePatient, OrthancView

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
    @BOTH_DATABASES
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

        # The stored CT: same pixels; new study, series and SOP Instance UIDs (the SOP one
        # derived from the new series and the sent UID); demographics stamped.
        original = pydicom.dcmread(io.BytesIO(sources["CT"]))
        series_uid = series[0]["MainDicomTags"]["SeriesInstanceUID"]
        new_uid = instance_uid_for(series_uid=series_uid, source_uid=original.SOPInstanceUID)
        [ct_id] = [
            i
            for i in series[0]["Instances"]
            if stored.get(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] == new_uid
        ]
        assert stored.transfer_syntax(ct_id) == HTJ2K_LOSSLESS
        ds = stored.dataset(ct_id)
        assert ds.StudyInstanceUID == body["studyUid"] != original.StudyInstanceUID
        assert ds.SOPInstanceUID == new_uid != original.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == new_uid
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
        assert old.SOPInstanceUID == original.SOPInstanceUID
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
        assert response.status_code == 202, response.text  # some stored, some not
        body = response.json()
        assert body["uploaded"] == 3
        assert body["failedFiles"] == [
            {
                "name": "upload.zip/../../evil.dcm",
                "error": "Refused: '..' in the archive path",
                "type": None,
            },
            {
                "name": "upload.zip//abs.dcm",
                "error": "Refused: absolute path in the archive",
                "type": None,
            },
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
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["uploaded"] == 1
        assert body["failedFiles"] == [
            {
                "name": "bomb.zip",
                "error": "Zip entry 'bomb.dcm' expands more than 200× (refused as a zip bomb)",
                "type": None,
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
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["uploaded"] == 1
        assert [f["name"] for f in body["failedFiles"]] == ["readme.txt", "cut.dcm"]
        assert [f["type"] for f in body["failedFiles"]] == ["NotDicom", "InvalidDicom"]
        assert "not DICOM" in body["failedFiles"][0]["error"]
        assert "truncated" in body["failedFiles"][1]["error"]
        assert stored.instance_count() == 1


class TestFolderRefusals:
    @BOTH_DATABASES
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


@BOTH_DATABASES
async def test_the_app_on_test_uses_the_database_asked_for(
    ingest_app: FastAPI, db_kind: str, make_patient: MakePatient
) -> None:
    """The PostgreSQL runs really look patients up in PostgreSQL."""
    runtime = ingest_app.state.runtime
    assert runtime.engine.dialect.name == db_kind
    patient = await make_patient()
    async with runtime.sessions() as session:
        assert await get_patient(session, patient_id=patient.patient_id) is not None


class TestIdempotentRetry:
    """``upload_id``: a retried folder upload stores into the same study, not a duplicate."""

    KEY = "3f1c9a52-7b1e-4c0d-9e55-0a1b2c3d4e5f"

    @staticmethod
    def folder(
        sources: dict[str, bytes],
    ) -> tuple[list[tuple[str, tuple[str, bytes, str]]], list[str]]:
        files = [files_part(name, data) for name, data in sources.items()]
        return files, ["exam/CT chest", "exam/CT chest", "exam/MR head"]

    @staticmethod
    def sources(corpus_dir: Path) -> dict[str, bytes]:
        return {
            "ct1.dcm": (corpus_dir / CORPUS["CT"]).read_bytes(),
            "ct2.dcm": to_bytes(make_dataset(rows=16, columns=16)),
            "mr1.dcm": (corpus_dir / CORPUS["MR"]).read_bytes(),
        }

    async def test_same_key_twice_is_one_study(
        self,
        client: httpx.AsyncClient,
        stored: OrthancView,
        make_patient: MakePatient,
        corpus_dir: Path,
    ) -> None:
        patient = await make_patient()
        files, paths = self.folder(self.sources(corpus_dir))
        data = {
            "patient_id": patient.patient_id,
            "study_description": "Retried",
            "series_path": paths,
            "upload_id": self.KEY,
        }
        first = await client.post(URL, files=files, data=data)
        second = await client.post(URL, files=files, data=data)  # the client lost the answer

        assert (first.status_code, second.status_code) == (201, 201), second.text
        one, two = first.json(), second.json()
        assert one == two  # same studyUid, studyId, series IDs, counts
        assert one["uploaded"] == 3 and one["failedFiles"] == []
        assert one["studyUid"] == study_uid_for(upload_id=self.KEY, patient_id=patient.patient_id)
        assert one["studyUid"].startswith("2.25.") and len(one["studyUid"]) <= 64
        assert stored.get("/studies") == [one["studyId"]]
        assert stored.instance_count() == 3
        series = [stored.get(f"/series/{sid}") for sid in one["orthancSeriesIds"]]
        assert [s["MainDicomTags"]["SeriesInstanceUID"] for s in series] == [
            series_uid_for(study_uid=one["studyUid"], series_key="exam/CT chest"),
            series_uid_for(study_uid=one["studyUid"], series_key="exam/MR head"),
        ]
        assert [len(s["Instances"]) for s in series] == [2, 1]

    async def test_retry_reports_already_stored_files_as_stored(
        self,
        client: httpx.AsyncClient,
        stored: OrthancView,
        make_patient: MakePatient,
        corpus_dir: Path,
    ) -> None:
        """First attempt stored only part of the folder; the retry completes the same study."""
        patient = await make_patient()
        sources = self.sources(corpus_dir)
        files, paths = self.folder(sources)
        data = {"patient_id": patient.patient_id, "upload_id": self.KEY}
        partial = await client.post(URL, files=files[:1], data={**data, "series_path": paths[:1]})
        assert partial.status_code == 201, partial.text
        complete = await client.post(URL, files=files, data={**data, "series_path": paths})
        assert complete.status_code == 201, complete.text
        body = complete.json()
        assert body["uploaded"] == 3
        assert body["studyUid"] == partial.json()["studyUid"]
        assert body["orthancSeriesIds"][0] == partial.json()["orthancSeriesIds"][0]
        assert stored.get("/studies") == [body["studyId"]]
        assert stored.instance_count() == 3

    async def test_retry_gives_new_files_the_first_attempts_study_date_and_time(
        self,
        client: httpx.AsyncClient,
        stored: OrthancView,
        make_patient: MakePatient,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Files without StudyDate/Time get the request's time; a retry must reuse the first's."""
        patient = await make_patient()
        undated = {
            name: to_bytes(make_dataset(rows=16, columns=16, StudyDate="", StudyTime=""))
            for name in ("a.dcm", "b.dcm")
        }
        files = [files_part(name, data) for name, data in undated.items()]
        data = {"patient_id": patient.patient_id, "upload_id": self.KEY}
        first_time = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
        monkeypatch.setattr(service, "utcnow", lambda: first_time)
        partial = await client.post(URL, files=files[:1], data=data)
        assert partial.status_code == 201, partial.text
        monkeypatch.setattr(service, "utcnow", lambda: first_time + datetime.timedelta(hours=25))
        complete = await client.post(URL, files=files, data=data)
        assert complete.status_code == 201, complete.text

        dated = {
            (str(ds.StudyDate), str(ds.StudyTime))
            for ds in (stored.dataset(i) for i in stored.get("/instances"))
        }
        assert dated == {("20260304", "050607")}
        assert stored.instance_count() == 2

    async def test_different_keys_are_two_studies(
        self,
        client: httpx.AsyncClient,
        stored: OrthancView,
        make_patient: MakePatient,
        corpus_dir: Path,
    ) -> None:
        patient = await make_patient()
        files, paths = self.folder(self.sources(corpus_dir))
        answers = []
        for key in (self.KEY, "another-upload-0000000001"):
            response = await client.post(
                URL,
                files=files,
                data={"patient_id": patient.patient_id, "series_path": paths, "upload_id": key},
            )
            assert response.status_code == 201, response.text
            answers.append(response.json())
        assert answers[0]["studyUid"] != answers[1]["studyUid"]
        assert sorted(stored.get("/studies")) == sorted(a["studyId"] for a in answers)
        assert stored.instance_count() == 6

    async def test_same_key_for_another_patient_is_an_unrelated_study(
        self,
        client: httpx.AsyncClient,
        stored: OrthancView,
        make_patient: MakePatient,
    ) -> None:
        first, second = await make_patient(), await make_patient()
        upload = to_bytes(make_dataset())
        answers = []
        for patient in (first, second):
            response = await client.post(
                URL,
                files=[files_part("a.dcm", upload)],
                data={"patient_id": patient.patient_id, "upload_id": self.KEY},
            )
            assert response.status_code == 201, response.text
            answers.append(response.json())
        assert answers[0]["studyUid"] != answers[1]["studyUid"]
        assert len(stored.get("/studies")) == 2
        assert len(stored.get("/patients")) == 2

    async def test_without_a_key_each_request_is_a_new_study(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        upload = to_bytes(make_dataset())
        answers = []
        for empty_counts_as_none in ({}, {"upload_id": ""}):
            response = await client.post(
                URL,
                files=[files_part("a.dcm", upload)],
                data={"patient_id": patient.patient_id, **empty_counts_as_none},
            )
            assert response.status_code == 201, response.text
            answers.append(response.json()["studyUid"])
        assert answers[0] != answers[1]
        assert len(stored.get("/studies")) == 2

    @pytest.mark.parametrize(
        ("upload_id", "message"),
        [
            (
                "short-key",
                "upload_id must be 16 to 128 characters long (a UUID is a good choice); got 9",
            ),
            (
                "k" * 129,
                "upload_id must be 16 to 128 characters long (a UUID is a good choice); got 129",
            ),
            (
                "upload id with spaces",
                "upload_id may contain only letters, digits and . _ : - (a UUID is a good choice)",
            ),
            (
                "../../etc/passwd-0000",
                "upload_id may contain only letters, digits and . _ : - (a UUID is a good choice)",
            ),
            (
                "3f1c9a52-7b1e-4c0d-9e55\n",
                "upload_id may contain only letters, digits and . _ : - (a UUID is a good choice)",
            ),
            (
                ["3f1c9a52-7b1e-4c0d-9e55-0a1b2c3d4e5f", "3f1c9a52-7b1e-4c0d-9e55-000000000000"],
                "upload_id was sent 2 times with different values: send it once",
            ),
        ],
        ids=["too-short", "too-long", "spaces", "slashes", "newline", "two-values"],
    )
    async def test_invalid_key_is_422_and_nothing_stored(
        self,
        client: httpx.AsyncClient,
        stored: OrthancView,
        make_patient: MakePatient,
        upload_id: str | list[str],
        message: str,
    ) -> None:
        patient = await make_patient()
        response = await client.post(
            URL,
            files=[files_part("a.dcm", to_bytes(make_dataset()))],
            data={"patient_id": patient.patient_id, "upload_id": upload_id},
        )
        assert response.status_code == 422
        assert response.json() == {"success": False, "error": message, "type": "InvalidUploadId"}
        assert stored.instance_count() == 0


def test_derived_uids_are_valid_and_distinct() -> None:
    """PS3.5 §9.1 / §B.2: digits and dots, no leading zeros, ≤ 64 characters."""
    uids = {
        study_uid_for(upload_id="a" * 128, patient_id="P" * 64),
        study_uid_for(upload_id="a" * 128, patient_id="Q" * 64),
        study_uid_for(upload_id="b" * 128, patient_id="P" * 64),
        series_uid_for(study_uid="2.25.1", series_key=""),
        series_uid_for(study_uid="2.25.1", series_key="a/b"),
        series_uid_for(study_uid="2.25.2", series_key="a/b"),
    }
    assert len(uids) == 6
    for uid in uids:
        assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]{0,38})", uid), uid
    # Fixed forever: a retry after an upgrade must still land in the same study.
    assert study_uid_for(upload_id="3f1c9a52-7b1e-4c0d-9e55-0a1b2c3d4e5f", patient_id="P1") == (
        "2.25.148760914681898322325941572149703231700"
    )
