"""A password inside a configured URL (``http://user:pw@host``) never reaches a log line or an
answer (issue 12 item 6): the start-up line shows the URL redacted, and a handler filter masks
any other line (a driver error, a traceback) that quotes such a URL."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from dicomgate.redaction import RedactCredentials, redact_text, redact_url
from tests.dicomgate_process import start_dicomgate, stop_dicomgate
from tests.orthanc_process import OrthancProcess

PASSWORD = "Orth4nc-In-Url-9981"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://dicomgate:s3cret@orthanc:8042", "http://dicomgate:***@orthanc:8042"),
        (
            "postgresql+asyncpg://app:p%40ss@db:5432/dicomgate",
            "postgresql+asyncpg://app:***@db:5432/dicomgate",
        ),
        ("http://:tok@host/x", "http://:***@host/x"),
        ("http://127.0.0.1:8042", "http://127.0.0.1:8042"),
        ("sqlite+aiosqlite:///./dicomgate.db", "sqlite+aiosqlite:///./dicomgate.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_text(f"failed to reach {url} twice") == f"failed to reach {shown} twice"


def test_the_log_filter_masks_messages_and_tracebacks() -> None:
    try:
        raise ConnectionError(f"cannot connect to http://u:{PASSWORD}@db:1/x")
    except ConnectionError as exc:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "engine %s", (f"http://u:{PASSWORD}@h",), None
        )
        record.exc_info = (type(exc), exc, exc.__traceback__)
    RedactCredentials().filter(record)
    formatted = logging.Formatter().format(record)
    assert PASSWORD not in formatted
    assert "engine http://u:***@h" in formatted and "http://u:***@db:1/x" in formatted


def test_serve_logs_the_orthanc_url_without_its_password(
    orthanc: OrthancProcess, tmp_path: Path
) -> None:
    url = orthanc.url.replace("http://", f"http://dicomgate:{PASSWORD}@")
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        proc, base = start_dicomgate(
            orthanc.url,
            tmp_path,
            env={"DICOMGATE_ORTHANC_URL": url, "DICOMGATE_LOG_LEVEL": "INFO"},
            stderr=stderr,
        )
        try:
            health = httpx.get(f"{base}/api/ris/health/", timeout=30)
            missing = httpx.get(f"{base}/api/orthanc/instances/nope/file/", timeout=30)
        finally:
            stop_dicomgate(proc)
    text = log.read_text()
    host = orthanc.url.removeprefix("http://")
    assert f"Orthanc at http://dicomgate:***@{host}" in text
    for shown in (text, health.text, missing.text):
        assert PASSWORD not in shown
