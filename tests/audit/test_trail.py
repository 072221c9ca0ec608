"""The audit trail answers "who saw or changed this patient's images", on SQLite and PostgreSQL:
every event names the patient, UIDs and Orthanc IDs it touched; filters by patient and study;
every timestamp in an answer is UTC with its offset."""

from __future__ import annotations

import datetime
from typing import Any

import httpx
from pydicom.uid import generate_uid

from tests.builders import to_bytes
from tests.identity.helpers import UPLOAD, image, part
from tests.ingest.helpers import BOTH_DATABASES, MakePatient, OrthancView


async def trail(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/api/ris/audit/", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def utc(value: str) -> datetime.datetime:
    """An answer's timestamp: ISO 8601 with an offset, and that offset is UTC."""
    moment = datetime.datetime.fromisoformat(value)
    assert moment.utcoffset() == datetime.timedelta(0), value
    return moment


@BOTH_DATABASES
async def test_an_upload_names_every_uid_and_orthanc_id_it_stored(
    client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
) -> None:
    patient = await make_patient()
    ids = {"sop_uid": generate_uid(), "study_uid": generate_uid(), "series_uid": generate_uid()}
    response = await client.post(
        UPLOAD, files=[part(to_bytes(image(**ids)))], data={"patient_id": patient.patient_id}
    )
    assert response.status_code == 201
    answer = response.json()["orthanc_response"]

    [event] = await trail(client, patient_id=patient.patient_id, action="upload")

    assert (event["actor"], event["outcome"], event["status_code"]) == (
        "anonymous (authentication disabled)",
        "success",
        201,
    )
    assert event["resource"] == {
        "patient_ids": [patient.patient_id],
        "study_instance_uids": [ids["study_uid"]],
        "series_instance_uids": [ids["series_uid"]],
        "sop_instance_uids": [ids["sop_uid"]],
        "orthanc_ids": [
            answer["ParentPatient"],
            answer["ParentStudy"],
            answer["ParentSeries"],
            answer["ID"],
        ],
    }
    assert await trail(client, study_instance_uid=ids["study_uid"]) == [event]
    assert utc(event["at"]) <= datetime.datetime.now(datetime.UTC)


@BOTH_DATABASES
async def test_a_refused_upload_names_what_it_conflicted_with(
    client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
) -> None:
    owner, other = await make_patient(), await make_patient()
    data = to_bytes(image(sop_uid=generate_uid()))
    first = await client.post(UPLOAD, files=[part(data)], data={"patient_id": owner.patient_id})
    refused = await client.post(UPLOAD, files=[part(data)], data={"patient_id": other.patient_id})
    assert refused.status_code == 409

    [event] = await trail(client, patient_id=other.patient_id)

    assert (event["action"], event["outcome"], event["status_code"]) == ("upload", "failure", 409)
    uid = image_uid(data)
    assert event["resource"]["conflicts"] == [
        {
            "sop_instance_uid": uid,
            "patient_id": other.patient_id,
            "existing_patient_id": owner.patient_id,
            "existing_orthanc_id": first.json()["orthanc_response"]["ID"],
            "reason": "PatientConflict",
        }
    ]
    assert event["resource"]["patient_ids"] == [other.patient_id, owner.patient_id]
    # The owner's trail shows the attempt on their image too.
    assert [e["status_code"] for e in await trail(client, patient_id=owner.patient_id)] == [
        409,
        201,
    ]


def image_uid(data: bytes) -> str:
    from tests.builders import from_bytes

    return str(from_bytes(data).SOPInstanceUID)


@BOTH_DATABASES
async def test_reads_of_a_patients_images_are_audited(
    client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
) -> None:
    patient = await make_patient()
    ids = {"sop_uid": generate_uid(), "study_uid": generate_uid(), "series_uid": generate_uid()}
    stored_answer = (
        await client.post(
            UPLOAD, files=[part(to_bytes(image(**ids)))], data={"patient_id": patient.patient_id}
        )
    ).json()["orthanc_response"]
    instance_id = stored_answer["ID"]
    reads = [
        f"/api/orthanc/studies/?patient_id={stored_answer['ParentPatient']}",
        f"/api/orthanc/series/?study_id={stored_answer['ParentStudy']}",
        f"/api/orthanc/instances/?series_id={stored_answer['ParentSeries']}",
        f"/api/orthanc/patients/{stored_answer['ParentPatient']}/images/",
        f"/api/orthanc/instances/{instance_id}/preview/",
        f"/api/orthanc/instances/{instance_id}/file/",
        f"/api/ris/patients/{patient.patient_id}/",
    ]
    for url in reads:
        assert (await client.get(url)).status_code == 200, url

    events = list(reversed(await trail(client, patient_id=patient.patient_id)))

    assert [e["action"] for e in events] == [
        "upload",
        "query",
        "query",
        "query",
        "query",
        "preview",
        "download",
        "patient_read",
    ]
    for event in events[1:7]:  # every image read names the study, and the instance's reads more
        assert ids["study_uid"] in event["resource"]["study_instance_uids"], event
    for event in events[3:7]:
        assert instance_id in event["resource"]["orthanc_ids"], event
    for event in (events[3], *events[5:7]):
        assert event["resource"]["sop_instance_uids"] == [ids["sop_uid"]], event
    # The study filter finds the same image reads (the patient cache read names no study).
    by_study = list(reversed(await trail(client, study_instance_uid=ids["study_uid"])))
    assert [e["id"] for e in by_study] == [e["id"] for e in events[:7]]


@BOTH_DATABASES
async def test_a_delete_names_what_it_deleted(
    client: httpx.AsyncClient, stored: OrthancView, make_patient: MakePatient
) -> None:
    patient = await make_patient()
    study_uid = generate_uid()
    answers = [
        (
            await client.post(
                UPLOAD,
                files=[part(to_bytes(image(seed=s, study_uid=study_uid)))],
                data={"patient_id": patient.patient_id},
            )
        ).json()["orthanc_response"]
        for s in (1, 2)
    ]
    sop_uids = sorted(
        stored.get(f"/instances/{a['ID']}")["MainDicomTags"]["SOPInstanceUID"] for a in answers
    )
    deleted = await client.delete(f"/api/orthanc/studies/{answers[0]['ParentStudy']}/")
    assert deleted.status_code == 200
    assert stored.instance_count() == 0

    [event] = await trail(client, study_instance_uid=study_uid, action="delete")

    resource = event["resource"]
    assert resource["patient_ids"] == [patient.patient_id]
    assert resource["study_instance_uids"] == [study_uid]
    assert sorted(resource["sop_instance_uids"]) == sop_uids
    assert len(resource["series_instance_uids"]) == 2
    assert {a["ID"] for a in answers} <= set(resource["orthanc_ids"])


@BOTH_DATABASES
async def test_every_timestamp_in_an_answer_is_utc_with_its_offset(
    client: httpx.AsyncClient, make_patient: MakePatient
) -> None:
    patient = await make_patient()
    record = (await client.get(f"/api/ris/patients/{patient.patient_id}/")).json()["patient"]
    utc(record["created_at"])
    utc(record["updated_at"])
    job = await client.post("/api/ris/conversions/", json={"all": True, "dry_run": True})
    assert job.status_code == 202, job.text
    utc(job.json()["created_at"])
    for event in await trail(client):
        utc(event["at"])
    since = await trail(client, since="2000-01-01T00:00:00+02:00")
    assert since and all(utc(e["at"]) for e in since)
