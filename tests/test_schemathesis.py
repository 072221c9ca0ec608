"""Schemathesis against the app's own OpenAPI: whatever a client sends, valid for the schema or
not, no answer is a server error and every answer matches what the schema documents for it.

The app runs under a real uvicorn in a thread (its own lifespan, a fresh SQLite database, the
session's Orthanc). The run is bounded and repeatable: a fixed number of examples per operation
and generation mode, derandomized.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dicomgate.app import create_app
from dicomgate.migrations import upgrade_database
from dicomgate.settings import Settings
from tests.live_server import serve_in_thread

EXAMPLES = 8  # per operation and mode: enough to reach every answer shape, bounded in time
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Negative cases add headers of any name; these belong to HTTP's framing, which uvicorn checks
# (a bad Content-Length is its 400) before the app sees the request: not the API's answer.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection"})
BOUNDARY = "schemathesis-related-7f3a"
RELATED = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


@schemathesis.serializer("multipart/related")
def related_parts(_ctx: Any, value: Any) -> bytes:
    """STOW-RS bodies (schemathesis has no multipart/related encoder): one part per item."""
    items = value.get("file", []) if isinstance(value, dict) else [value]
    chunks = []
    for item in items if isinstance(items, list) else [items]:
        data = item if isinstance(item, bytes) else str(item).encode()
        chunks.append(
            f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
        )
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


# The schema as the app builds it (no server needed to read it), one test per operation.
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(auth_enabled=False)).openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
# Negative cases only where a client can send something wrong (parameters or a body).
CASES = [
    pytest.param(operation, mode, id=f"{operation.label}-{mode.value}")
    for operation in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE
    or {"parameters", "requestBody"} & set(operation.definition.raw)
]


@pytest.fixture(scope="module")
def live_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("schemathesis")
    own = settings.model_copy(
        update={
            "database_url": f"sqlite+aiosqlite:///{folder / 'dicomgate.db'}",
            "journal_dir": folder / "journal",
            "workers": 1,
            "resume_conversions_on_start": False,
        }
    )
    upgrade_database(own)
    with serve_in_thread(create_app(own)) as url:
        yield url


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_no_server_error_and_no_schema_violation(
    operation: schemathesis.APIOperation, mode: GenerationMode, live_url: str
) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def exchange(case: schemathesis.Case) -> None:
        headers = {"Content-Type": RELATED} if case.media_type == "multipart/related" else None
        for name in [n for n in case.headers or {} if n.lower() in FRAMING_HEADERS]:
            del case.headers[name]
        case.call_and_validate(base_url=live_url, checks=CHECKS, headers=headers, timeout=60)

    exchange()


async def test_what_it_found_stays_fixed_a_non_ascii_accept_is_400(
    client: httpx.AsyncClient,
) -> None:
    """Found by the run above: a non-Latin-1 character in ``?accept=`` was a 500."""
    response = await client.get("/dicomweb/studies", params={"accept": "image/\U00082e04"})
    assert response.status_code == 400, response.text
    assert response.json() == {
        "success": False,
        "error": "The Accept value 'image/\\U00082e04' is not a list of media types",
        "type": "BadRequest",
    }
