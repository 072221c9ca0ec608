"""``GET /metrics``: what operators graph and alert on, counted from real requests and uploads."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dicomgate.metrics import UNMATCHED
from tests.orthanc_process import OrthancProcess

CT = "CT_small.dcm"
LOSSY = "SC_rgb_jpeg_dcmtk.dcm"


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` as {(name, sorted labels): value}."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_requests_are_counted_by_route_template_never_by_raw_path(
    client: httpx.AsyncClient, clean_orthanc: OrthancProcess
) -> None:
    secret = "SECRET-PID-4711"
    route = "/api/ris/patients/{patient_id}/"
    before = await scrape(client)
    assert (await client.get(f"/api/ris/patients/{secret}/")).status_code == 404
    assert (await client.get(f"/no/such/route/{secret}")).status_code == 404
    assert (await client.get("/api/ris/health/")).status_code == 200
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("dicomgate_http_requests_total", method="GET", route=route, status="404") == 1
    assert delta("dicomgate_http_requests_total", method="GET", route=UNMATCHED, status="404") == 1
    health = {"method": "GET", "route": "/api/ris/health/"}
    assert delta("dicomgate_http_requests_total", status="200", **health) == 1
    assert delta("dicomgate_http_request_duration_seconds_count", **health) == 1
    assert delta("dicomgate_http_bytes_total", direction="out", route="/api/ris/health/") > 0
    text = (await client.get("/metrics")).text
    assert secret not in text  # no patient ID (or any raw path) becomes a label


async def test_an_upload_counts_instances_bytes_codec_time_and_pass_throughs(
    client: httpx.AsyncClient, clean_orthanc: OrthancProcess, corpus_dir: Path
) -> None:
    ct = (corpus_dir / CT).read_bytes()
    before = await scrape(client)
    answer = await client.post("/api/ris/upload/dicom/", files={"file": ("ct.dcm", ct)})
    assert answer.status_code == 201, answer.text
    stored = answer.json()["stored_size"]
    lossy = await client.post(
        "/api/ris/upload/dicom/", files={"file": ("sc.dcm", (corpus_dir / LOSSY).read_bytes())}
    )
    assert lossy.status_code == 201, lossy.text
    assert lossy.json()["pass_through_reason"] == "lossy_source"
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("dicomgate_instances_ingested_total", outcome="converted") == 1
    assert delta("dicomgate_instances_ingested_total", outcome="unchanged") == 1
    lossy_size = (corpus_dir / LOSSY).stat().st_size
    assert delta("dicomgate_ingest_bytes_total", stage="received") == len(ct) + lossy_size
    stored += lossy.json()["stored_size"]  # a kept file is still re-written (preamble, meta)
    assert delta("dicomgate_ingest_bytes_total", stage="stored") == stored
    assert delta("dicomgate_transcode_seconds_count", path="ingest") == 2
    assert delta("dicomgate_transcode_seconds_sum", path="ingest") > 0
    assert delta("dicomgate_pass_throughs_total", path="ingest", reason="lossy_source") == 1
    upload = {"route": "/api/ris/upload/dicom/"}
    assert delta("dicomgate_http_bytes_total", direction="in", **upload) > len(ct) + lossy_size
    assert value(after, "dicomgate_pool_workers") == 2
    assert value(after, "dicomgate_pool_queue_depth") == 0


async def test_orthanc_failures_are_counted_by_kind(
    client: httpx.AsyncClient, clean_orthanc: OrthancProcess
) -> None:
    before = await scrape(client)
    clean_orthanc.stop()
    try:
        assert (await client.get("/api/orthanc/patients/")).status_code == 503
    finally:
        clean_orthanc.start()
    after = await scrape(client)
    kind = {"kind": "OrthancUnavailable"}
    assert (
        value(after, "dicomgate_orthanc_errors_total", **kind)
        - value(before, "dicomgate_orthanc_errors_total", **kind)
        == 1
    )
    listing = {"method": "GET", "route": "/api/orthanc/patients/", "status": "503"}
    assert value(after, "dicomgate_http_requests_total", **listing) >= 1


async def test_access_line_has_the_template_status_and_request_id_but_no_raw_path(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="dicomgate.access"):
        response = await client.get(
            "/api/ris/patients/SECRET-PID-4711/", headers={"X-Request-ID": "trace-abc-123"}
        )
    assert response.status_code == 404
    (line,) = [r for r in caplog.records if r.name == "dicomgate.access"]
    assert line.getMessage().startswith("GET /api/ris/patients/{patient_id}/ 404 ")
    assert line.route == "/api/ris/patients/{patient_id}/"  # type: ignore[attr-defined]
    assert line.status == 404  # type: ignore[attr-defined]
    assert "SECRET-PID-4711" not in line.getMessage()
