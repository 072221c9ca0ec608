"""DICOMweb reads: who may read (401/403), the audit rows naming what was read, and CORS for a
viewer on another origin (preflight with Authorization and Range, exposed headers)."""

from __future__ import annotations

import time

import requests

from tests.dicomweb.corpus import Corpus
from tests.dicomweb.reads import VIEWER_ORIGIN, ReadServer


class TestWhoMayRead:
    def test_no_credential_is_401_and_another_scope_403(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        frames = corpus["ct1"].path(read_server.dicomweb) + "/frames/1"
        search = f"{read_server.dicomweb}/studies?PatientID=PAT-A"

        for url in (frames, search):
            anonymous = requests.get(url)
            writer = read_server.session("dicom:write").get(url)
            assert anonymous.status_code == 401
            assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="dicomgate"'
            assert writer.status_code == 403
            assert writer.json()["error"] == "This route needs the scope 'dicom:read'"


class TestAudit:
    def test_queries_and_retrievals_name_what_they_touched(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        actor = f"radiologist-{time.time_ns()}"
        session = read_server.session("dicom:read", sub=actor)
        ct, mr = corpus["ct1"], corpus["mr"]
        base = read_server.dicomweb

        assert session.get(f"{base}/studies", params={"PatientID": "PAT-A"}).status_code == 200
        series_metadata = f"{base}/studies/{ct.study}/series/{ct.series}/metadata"
        assert session.get(series_metadata).status_code == 200
        assert session.get(mr.path(base) + "/frames/2", headers={"Accept": "image/jhc"}).ok
        assert session.get(mr.path(base) + "/frames/12").status_code == 404
        assert read_server.session("dicom:write", sub=actor).get(series_metadata).status_code == 403

        # Rows are written once each answer is sent: their order is not the requests'.
        rows = [
            (e["action"], e["status_code"], e["outcome"], e["resource"])
            for e in read_server.audit(actor, count=5)
        ]
        [query] = [r for r in rows if r[0] == "query"]
        [metadata] = [
            r for r in rows if r[1] == 200 and "frame_list" not in r[3] and r[0] != "query"
        ]
        [frames] = [r for r in rows if r[1] == 200 and "frame_list" in r[3]]
        [missing] = [r for r in rows if r[1] == 404]
        [refused] = [r for r in rows if r[1] == 403]
        assert query[:3] == ("query", 200, "success")
        assert query[3]["patient_ids"] == ["PAT-A"]
        assert set(query[3]["study_instance_uids"]) == {ct.study, mr.study}
        assert metadata == (
            "retrieve",
            200,
            "success",
            {
                "study_instance_uid": ct.study,
                "series_instance_uid": ct.series,
                "patient_ids": ["PAT-A"],
                "study_instance_uids": [ct.study],
                "series_instance_uids": [ct.series],
                "orthanc_ids": [
                    read_server.orthanc_series_id(ct.orthanc_id),
                ],
            },
        )
        assert frames[:3] == ("retrieve", 200, "success")
        assert frames[3]["sop_instance_uids"] == [mr.sop]
        assert frames[3]["orthanc_ids"] == [mr.orthanc_id]
        assert frames[3]["patient_ids"] == ["PAT-A"]
        assert frames[3]["frame_list"] == "2"
        assert missing[:3] == ("retrieve", 404, "failure")
        assert missing[3]["sop_instance_uids"] == [mr.sop]  # what was asked for, and whose
        assert refused[:3] == ("retrieve", 403, "denied")


class TestCors:
    def test_preflight_allows_authorization_and_range(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        url = corpus["ct1"].path(read_server.dicomweb) + "/frames/1"
        answer = requests.options(
            url,
            headers={
                "Origin": VIEWER_ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization,range",
            },
        )

        assert answer.status_code == 200
        assert answer.headers["Access-Control-Allow-Origin"] == VIEWER_ORIGIN
        allowed = {
            h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")
        }
        assert {"authorization", "range"} <= allowed

    def test_a_viewer_can_read_content_range(self, read_server: ReadServer, corpus: Corpus) -> None:
        url = corpus["ct1"].path(read_server.dicomweb) + "/frames/1"
        answer = read_server.session("dicom:read").get(
            url, headers={"Origin": VIEWER_ORIGIN, "Accept": "image/jhc", "Range": "bytes=0-63"}
        )

        assert answer.status_code == 206
        assert answer.headers["Access-Control-Allow-Origin"] == VIEWER_ORIGIN
        exposed = {h.strip() for h in answer.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"Content-Range", "Content-Length", "Accept-Ranges"} <= exposed

    def test_other_origins_get_no_grant(self, read_server: ReadServer, corpus: Corpus) -> None:
        answer = requests.options(
            f"{read_server.dicomweb}/studies",
            headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"},
        )

        assert "Access-Control-Allow-Origin" not in answer.headers
