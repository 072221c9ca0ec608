"""Structured logs: JSON lines from the real server process, request ids, no PHI in access lines."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import httpx

from dicomgate.cli import log_formatter
from dicomgate.phi import Phi
from dicomgate.requestid import RequestIdFilter
from tests.dicomgate_process import start_dicomgate, stop_dicomgate
from tests.orthanc_process import OrthancProcess

SECRET = "SECRET-PID-0815"


def test_json_formatter_writes_one_valid_object_per_record() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(log_formatter("json"))
    logger = logging.getLogger("dicomgate.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            'Refused "%s": it\'s {not} JSON-safe\n on two lines',
            Phi(SECRET),
            extra={"route": "/x/{id}/", "status": 415},
        )
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "dicomgate.test-json"
    assert record["request_id"] == "-"  # outside a request
    assert record["message"].startswith('Refused "<phi redacted>": it\'s {not} JSON-safe\n')
    assert record["route"] == "/x/{id}/" and record["status"] == 415
    assert record["time"].endswith("+00:00")  # ISO 8601 in UTC
    assert SECRET not in line


def test_the_server_logs_json_lines_with_request_ids_and_no_phi(
    orthanc: OrthancProcess, tmp_path: Path
) -> None:
    orthanc.start()
    log_file = tmp_path / "server.log"
    with log_file.open("wb") as stderr:
        proc, url = start_dicomgate(
            orthanc.url,
            tmp_path,
            env={"DICOMGATE_LOG_FORMAT": "json", "DICOMGATE_LOG_LEVEL": "INFO"},
            stderr=stderr,
        )
        try:
            answer = httpx.get(
                f"{url}/api/ris/patients/{SECRET}/",
                params={"search": SECRET},
                headers={"X-Request-ID": "trace-json-1"},
            )
            assert answer.status_code == 404
            assert answer.headers["X-Request-ID"] == "trace-json-1"
        finally:
            stop_dicomgate(proc)
    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(r["logger"].startswith("uvicorn") for r in records)  # uvicorn's own records too
    (access,) = [r for r in records if r.get("request_id") == "trace-json-1"]
    assert access["logger"] == "dicomgate.access"
    assert access["route"] == "/api/ris/patients/{patient_id}/"
    assert access["status"] == 404
    assert access["http_method"] == "GET"
    assert SECRET not in log_file.read_text()  # neither path nor query string is logged
