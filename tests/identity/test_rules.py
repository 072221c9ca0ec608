"""One SOP Instance UID, one instance, one patient: every rule against the real Orthanc, on
SQLite and PostgreSQL where the claim table matters (``BOTH_DATABASES``)."""

from __future__ import annotations

import datetime
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from pydicom.uid import generate_uid
from sqlalchemy import update

from dicomgate.db import session_scope
from dicomgate.identity import service as identity_service
from dicomgate.identity.models import STORING, InstanceClaim
from dicomgate.ingest.idempotency import instance_uid_for
from tests.builders import from_bytes, to_bytes
from tests.dicomweb.test_stow import related
from tests.identity.helpers import FOLDER, MOVE_TEXT, UPLOAD, holders, image, part
from tests.ingest.helpers import BOTH_DATABASES, MakePatient, OrthancView
from tests.orthanc_process import OrthancProcess

PATIENT_CONFLICT = 0xA778
DUPLICATE_INSTANCE = 0x0111


def uids() -> dict[str, str]:
    return {"sop_uid": generate_uid(), "study_uid": generate_uid(), "series_uid": generate_uid()}


async def upload(
    client: httpx.AsyncClient, data: bytes, patient_id: str | None = None
) -> httpx.Response:
    fields = {"patient_id": patient_id} if patient_id else {}
    return await client.post(UPLOAD, files=[part(data)], data=fields)


class TestOnePatient:
    @BOTH_DATABASES
    async def test_the_same_file_for_another_patient_is_409_and_nothing_is_stored(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        first_patient, second_patient = await make_patient(), await make_patient()
        ids = uids()
        data = to_bytes(image(**ids))
        first = await upload(client, data, first_patient.patient_id)
        assert first.status_code == 201, first.text
        kept = stored.file(first.json()["orthanc_response"]["ID"])

        second = await upload(client, data, second_patient.patient_id)

        assert second.status_code == 409, second.text
        body = second.json()
        assert body["type"] == "PatientConflict"
        assert body["error"] == (
            f"SOP Instance UID {ids['sop_uid']} is already stored under another patient: an "
            f"instance belongs to one patient only. {MOVE_TEXT}, not a side effect of an "
            "upload; nothing was stored"
        )
        assert first_patient.patient_id not in body["error"]  # never says whose it is
        instance_id = first.json()["orthanc_response"]["ID"]
        assert holders(stored, ids["sop_uid"]) == [(instance_id, first_patient.patient_id)]
        assert stored.file(instance_id) == kept

    async def test_without_patient_id_the_files_own_patient_id_is_checked(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        ids = uids()
        data = to_bytes(image(**ids))  # its own Patient ID is FILE-ID
        assert (await upload(client, data, patient.patient_id)).status_code == 201
        again = await upload(client, data)
        assert again.status_code == 409 and again.json()["type"] == "PatientConflict"
        assert [p for _, p in holders(stored, ids["sop_uid"])] == [patient.patient_id]

    @BOTH_DATABASES
    async def test_the_identical_file_again_is_an_idempotent_success_that_says_so(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        ids = uids()
        data = to_bytes(image(**ids))
        first = await upload(client, data, patient.patient_id)
        assert first.status_code == 201
        assert first.json()["message"] == "Uploaded and converted successfully"
        kept = stored.file(first.json()["orthanc_response"]["ID"])

        again = await upload(client, data, patient.patient_id)

        assert again.status_code == 201, again.text
        body = again.json()
        assert body["message"].startswith("Already stored: identical to the instance stored")
        assert body["orthanc_response"]["Status"] == "AlreadyStored"
        assert body["orthanc_response"]["ID"] == first.json()["orthanc_response"]["ID"]
        assert stored.instance_count() == 1
        assert stored.file(body["orthanc_response"]["ID"]) == kept

    async def test_new_demographics_stamped_on_the_same_file_is_still_the_same_instance(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        """Patient's Name is what dicomgate stamps: a corrected name does not make it new."""
        patient = await make_patient(family_name="Smith")
        data = to_bytes(image(**uids()))
        assert (await upload(client, data, patient.patient_id)).status_code == 201
        renamed = await client.put(
            f"/api/ris/patients/{patient.patient_id}/",
            json={"family_name": "Smith-Jones", "given_name": "Jane", "gender": "female"},
        )
        assert renamed.status_code == 200, renamed.text
        again = await upload(client, data, patient.patient_id)
        assert again.status_code == 201
        assert again.json()["orthanc_response"]["Status"] == "AlreadyStored"
        assert stored.instance_count() == 1


class TestOneContent:
    @BOTH_DATABASES
    async def test_other_pixels_under_a_stored_uid_is_409_and_the_stored_file_stays(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        ids = uids()
        first = await upload(client, to_bytes(image(seed=1, **ids)), patient.patient_id)
        instance_id = first.json()["orthanc_response"]["ID"]
        kept = stored.file(instance_id)

        other = await upload(client, to_bytes(image(seed=2, **ids)), patient.patient_id)

        assert other.status_code == 409, other.text
        assert other.json()["type"] == "ContentConflict"
        assert other.json()["error"] == (
            f"SOP Instance UID {ids['sop_uid']} is already stored with different pixel data: a "
            "changed instance needs a new SOP Instance UID; nothing was stored"
        )
        assert stored.file(instance_id) == kept
        np.testing.assert_array_equal(
            from_bytes(kept).pixel_array, image(seed=1, **ids).pixel_array
        )

    async def test_another_attribute_under_a_stored_uid_is_409(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        ids = uids()
        assert (await upload(client, to_bytes(image(**ids)), patient.patient_id)).status_code == 201
        other = await upload(
            client, to_bytes(image(**ids, BodyPartExamined="KNEE")), patient.patient_id
        )
        assert other.status_code == 409
        assert "already stored with different attributes" in other.json()["error"]
        assert stored.instance_count() == 1

    async def test_the_same_uid_in_another_study_is_409(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        ids = uids()
        assert (await upload(client, to_bytes(image(**ids)), patient.patient_id)).status_code == 201
        moved = {**ids, "study_uid": generate_uid()}
        other = await upload(client, to_bytes(image(**moved)), patient.patient_id)
        assert other.status_code == 409
        assert other.json()["type"] == "ContentConflict"
        assert (
            "already stored for this patient in another study or series" in (other.json()["error"])
        )
        assert stored.instance_count() == 1


class TestInstancesThatArrivedWithoutDicomgate:
    async def test_orthanc_is_asked_whatever_dicomgate_remembers(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        """Stored straight into Orthanc (uncompressed): the same file through dicomgate (HTJ2K)
        is the same instance; any other patient or pixels is refused."""
        ids = uids()
        plain = to_bytes(image(**ids))
        direct = stored.server.store(plain)
        patient = await make_patient()

        same = await upload(client, plain)
        assert same.status_code == 201, same.text
        assert same.json()["orthanc_response"]["Status"] == "AlreadyStored"
        assert stored.file(direct["ID"]) == plain  # Orthanc kept its own copy

        other_patient = await upload(client, plain, patient.patient_id)
        assert other_patient.status_code == 409
        assert other_patient.json()["type"] == "PatientConflict"
        other_pixels = await upload(client, to_bytes(image(seed=99, **ids)))
        assert other_pixels.status_code == 409
        assert other_pixels.json()["type"] == "ContentConflict"
        assert holders(stored, ids["sop_uid"]) == [(direct["ID"], "FILE-ID")]

    @BOTH_DATABASES
    async def test_a_deleted_instance_frees_its_uid(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        first_patient, second_patient = await make_patient(), await make_patient()
        ids = uids()
        data = to_bytes(image(**ids))
        first = await upload(client, data, first_patient.patient_id)
        deleted = await client.delete(
            f"/api/orthanc/instances/{first.json()['orthanc_response']['ID']}/"
        )
        assert deleted.status_code == 200
        second = await upload(client, data, second_patient.patient_id)
        assert second.status_code == 201, second.text
        assert [p for _, p in holders(stored, ids["sop_uid"])] == [second_patient.patient_id]


class TestSeveralFiles:
    async def test_some_refused_is_202_all_refused_is_409(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        first_patient, second_patient = await make_patient(), await make_patient()
        taken = [to_bytes(image(seed=s, **uids())) for s in (1, 2)]
        for data in taken:
            assert (await upload(client, data, first_patient.patient_id)).status_code == 201
        fresh = to_bytes(image(seed=3, **uids()))

        some = await client.post(
            UPLOAD,
            files=[part(taken[0], "taken.dcm"), part(fresh, "fresh.dcm")],
            data={"patient_id": second_patient.patient_id},
        )
        assert some.status_code == 202, some.text
        body = some.json()
        assert (body["success"], body["uploaded"]) == (False, 1)
        assert [(f["name"], f["type"]) for f in body["failed_files"]] == [
            ("taken.dcm", "PatientConflict")
        ]

        none = await client.post(
            UPLOAD,
            files=[part(taken[0], "a.dcm"), part(taken[1], "b.dcm")],
            data={"patient_id": second_patient.patient_id},
        )
        assert none.status_code == 409, none.text
        assert none.json()["type"] == "IdentityConflict"
        assert none.json()["error"].startswith("No file was stored: a.dcm: SOP Instance UID")
        assert stored.instance_count() == 3


class TestClaims:
    """A claim held by another upload (another replica, or one that crashed)."""

    @staticmethod
    async def _hold(app: FastAPI, sop_instance_uid: str, lease: datetime.timedelta) -> None:
        async with session_scope(app.state.runtime.sessions) as session:
            await session.execute(
                update(InstanceClaim)
                .where(InstanceClaim.sop_instance_uid == sop_instance_uid)
                .values(state=STORING, lease_until=datetime.datetime.now(datetime.UTC) + lease)
            )

    @BOTH_DATABASES
    async def test_a_claim_being_stored_refuses_others_and_expires(
        self,
        client: httpx.AsyncClient,
        stored: OrthancView,
        make_patient: MakePatient,
        ingest_app: FastAPI,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        first_patient, second_patient = await make_patient(), await make_patient()
        ids = uids()
        data = to_bytes(image(**ids))
        assert (await upload(client, data, first_patient.patient_id)).status_code == 201
        await self._hold(ingest_app, ids["sop_uid"], datetime.timedelta(minutes=10))

        other = await upload(client, data, second_patient.patient_id)
        assert other.status_code == 409
        assert other.json()["type"] == "InstanceBusy"
        assert (
            "being stored right now by another upload for another patient"
            in (other.json()["error"])
        )
        monkeypatch.setattr(identity_service, "WAIT_FOR_SAME", 0.3)
        same = await upload(client, data, first_patient.patient_id)
        assert same.status_code == 409
        assert "has not finished: retry later" in same.json()["error"]

        await self._hold(ingest_app, ids["sop_uid"], -datetime.timedelta(seconds=1))  # expired
        assert (await upload(client, data, second_patient.patient_id)).status_code == 409
        same = await upload(client, data, first_patient.patient_id)
        assert same.status_code == 201
        assert same.json()["orthanc_response"]["Status"] == "AlreadyStored"
        assert [p for _, p in holders(stored, ids["sop_uid"])] == [first_patient.patient_id]


class TestFolderUploads:
    @BOTH_DATABASES
    async def test_twice_without_upload_id_is_two_studies_sharing_no_uid(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        sent = [image(seed=s) for s in (1, 2)]
        files = [
            ("files", (f"{i}.dcm", to_bytes(ds), "application/dicom")) for i, ds in enumerate(sent)
        ]
        first = await client.post(FOLDER, files=files, data={"patient_id": patient.patient_id})
        second = await client.post(FOLDER, files=files, data={"patient_id": patient.patient_id})
        assert (first.status_code, second.status_code) == (201, 201), second.text
        assert first.json()["studyUid"] != second.json()["studyUid"]
        by_study: dict[str, set[str]] = {}
        for instance_id in stored.get("/instances"):
            ds = stored.dataset(instance_id)
            by_study.setdefault(str(ds.StudyInstanceUID), set()).add(str(ds.SOPInstanceUID))
            [item] = ds.OriginalAttributesSequence
            [old] = item.ModifiedAttributesSequence
            assert old.SOPInstanceUID in {str(s.SOPInstanceUID) for s in sent}
            assert ds.SOPInstanceUID == instance_uid_for(
                series_uid=str(ds.SeriesInstanceUID), source_uid=str(old.SOPInstanceUID)
            )
        assert len(by_study) == 2
        first_uids, second_uids = by_study.values()
        assert len(first_uids) == len(second_uids) == 2 and not first_uids & second_uids

    @BOTH_DATABASES
    async def test_a_retry_with_the_same_upload_id_stores_nothing_twice(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        files = [
            ("files", (f"{s}.dcm", to_bytes(image(seed=s)), "application/dicom")) for s in (1, 2)
        ]
        data = {"patient_id": patient.patient_id, "upload_id": "retry-0f1e2d3c4b5a6978"}
        first = await client.post(FOLDER, files=files, data=data)
        again = await client.post(FOLDER, files=files, data=data)
        assert (first.status_code, again.status_code) == (201, 201), again.text
        assert again.json()["studyUid"] == first.json()["studyUid"]
        assert again.json()["uploaded"] == 2 and again.json()["failedFiles"] == []
        assert stored.instance_count() == 2


class TestStow:
    @staticmethod
    async def stow(client: httpx.AsyncClient, *datasets: Any) -> httpx.Response:
        body, content_type = related([(to_bytes(ds), "application/dicom") for ds in datasets])
        return await client.post(
            "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
        )

    @BOTH_DATABASES
    async def test_a_refused_instance_is_in_the_failed_sop_sequence(
        self, client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
    ) -> None:
        patient = await make_patient()
        taken, changed, fresh = uids(), uids(), uids()
        # `taken` is stored under the patient (stamped); the file says FILE-ID.
        assert (
            await upload(client, to_bytes(image(**taken)), patient.patient_id)
        ).status_code == 201
        # `changed` is stored under FILE-ID, and will be sent again with other pixels.
        assert (await upload(client, to_bytes(image(**changed)))).status_code == 201
        response = await self.stow(client, image(**taken), image(seed=5, **changed), image(**fresh))
        assert response.status_code == 202, response.text
        body = response.json()
        failed = {
            item["00081155"]["Value"][0]: item["00081197"]["Value"][0]
            for item in body["00081198"]["Value"]
        }
        assert failed == {
            taken["sop_uid"]: PATIENT_CONFLICT,
            changed["sop_uid"]: DUPLICATE_INSTANCE,
        }
        stored_uids = [item["00081155"]["Value"][0] for item in body["00081199"]["Value"]]
        assert stored_uids == [fresh["sop_uid"]]
        assert [p for _, p in holders(stored, taken["sop_uid"])] == [patient.patient_id]

        nothing = await self.stow(client, image(**taken))
        assert nothing.status_code == 409
        assert nothing.json()["00081198"]["Value"][0]["00081197"]["Value"] == [PATIENT_CONFLICT]
        identical = await self.stow(client, image(**fresh))
        assert identical.status_code == 200


async def test_a_shut_orthanc_stores_nothing_and_leaves_no_claim(
    client: httpx.AsyncClient, clean_orthanc: OrthancProcess, make_patient: MakePatient
) -> None:
    """Orthanc down mid-upload: 503, and the claim was given back (the retry is not refused)."""
    first_patient, second_patient = await make_patient(), await make_patient()
    data = to_bytes(image(**uids()))
    clean_orthanc.stop()
    try:
        down = await upload(client, data, first_patient.patient_id)
    finally:
        clean_orthanc.start()
    assert down.status_code == 503
    assert (await upload(client, data, second_patient.patient_id)).status_code == 201
