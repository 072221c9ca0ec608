"""The audit trail: rows for audited actions (also refused and failed), readable by admins."""

from __future__ import annotations

import time

import httpx

from tests.auth.helpers import token
from tests.builders import make_dataset, to_bytes
from tests.orthanc_process import OrthancProcess


def bearer(*scopes: str, sub: str = "dr.house") -> dict[str, str]:
    return {"Authorization": "Bearer " + token(list(scopes), sub=sub)}


async def events(client: httpx.AsyncClient, **params: str) -> list[dict[str, object]]:
    r = await client.get("/api/ris/audit/", params=params, headers=bearer("admin", sub="auditor"))
    assert r.status_code == 200, r.text
    result: list[dict[str, object]] = r.json()["events"]
    return result


class TestAuditTrail:
    async def test_download_delete_and_refusals_are_recorded(
        self, auth_client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        actor = f"radiographer-{time.time_ns()}"
        stored = clean_orthanc.store(to_bytes(make_dataset()))
        iid = stored["ID"]

        r = await auth_client.get(
            f"/api/orthanc/instances/{iid}/file/", headers=bearer("dicom:read", sub=actor)
        )
        assert r.status_code == 200
        r = await auth_client.delete(
            "/api/orthanc/instances/no-such-id/", headers=bearer("dicom:delete", sub=actor)
        )
        assert r.status_code == 404
        r = await auth_client.delete(
            f"/api/orthanc/instances/{iid}/", headers=bearer("dicom:read", sub=actor)
        )
        assert r.status_code == 403
        r = await auth_client.delete(f"/api/orthanc/instances/{iid}/")
        assert r.status_code == 401

        mine = await events(auth_client, actor=actor)
        got = [(e["action"], e["outcome"], e["status_code"], e["resource"]) for e in reversed(mine)]
        async with httpx.AsyncClient() as orthanc_http:
            tags = (
                await orthanc_http.get(f"{clean_orthanc.url}/instances/{iid}/simplified-tags")
            ).json()
        parents = [stored["ParentPatient"], stored["ParentStudy"], stored["ParentSeries"], iid]
        assert got == [
            (
                "download",
                "success",
                200,
                {
                    "instance_id": iid,
                    "patient_ids": [tags["PatientID"]],
                    "study_instance_uids": [tags["StudyInstanceUID"]],
                    "series_instance_uids": [tags["SeriesInstanceUID"]],
                    "sop_instance_uids": [tags["SOPInstanceUID"]],
                    "orthanc_ids": parents,
                },
            ),
            ("delete", "failure", 404, {"orthanc_id": "no-such-id"}),
            # Refused before the route ran: the resource is what was asked for.
            ("delete", "denied", 403, {"orthanc_id": iid}),
        ]
        anonymous = await events(auth_client, actor="anonymous", action="delete")
        assert anonymous[0]["outcome"] == "denied" and anonymous[0]["status_code"] == 401
        assert anonymous[0]["resource"] == {"orthanc_id": iid}
        # The instance is still there: refused deletes changed nothing.
        async with httpx.AsyncClient() as orthanc_http:
            still = await orthanc_http.get(f"{clean_orthanc.url}/instances/{iid}")
        assert still.status_code == 200

    async def test_the_trail_needs_admin_and_reading_it_is_audited(
        self, auth_client: httpx.AsyncClient
    ) -> None:
        r = await auth_client.get("/api/ris/audit/", headers=bearer("dicom:read", sub="nosy"))
        assert r.status_code == 403
        await events(auth_client, patient_id="P-ASKED-FOR")
        [used] = await events(auth_client, action="audit_read", limit="1")
        assert (used["actor"], used["outcome"]) == ("auditor", "success")
        assert used["resource"]["patient_ids"] == ["P-ASKED-FOR"]
        [refused] = await events(auth_client, actor="nosy")
        assert (refused["action"], refused["outcome"]) == ("audit_read", "denied")
