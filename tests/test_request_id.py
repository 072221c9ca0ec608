"""Request ids: echoed on responses and sent on the Orthanc calls made for the request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from dicomgate.orthanc import OrthancClient
from dicomgate.requestid import REQUEST_ID
from dicomgate.runtime import build_http_client
from dicomgate.settings import Settings


class TestRequestIdOnResponses:
    async def test_caller_id_is_echoed(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/api/ris/health/", headers={"X-Request-ID": "ris-4711.a"})
        assert r.headers["X-Request-ID"] == "ris-4711.a"

    async def test_unsafe_id_is_replaced(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/api/ris/health/", headers={"X-Request-ID": "x\r\nSet-Cookie: a"})
        assert r.headers["X-Request-ID"] != "x\r\nSet-Cookie: a"
        assert len(r.headers["X-Request-ID"]) == 32

    async def test_errors_carry_an_id_too(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/api/orthanc/instances/no-such-id/file/")
        assert r.status_code == 404
        assert len(r.headers["X-Request-ID"]) == 32


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A loopback HTTP server answering ``/system`` and recording the headers it received."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            body = b'{"Version": "test"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


async def test_orthanc_calls_carry_the_request_id(
    recording_server: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = recording_server
    http = build_http_client(Settings(orthanc_url=url))
    try:
        token = REQUEST_ID.set("trace-123")
        try:
            await OrthancClient(http).system()
        finally:
            REQUEST_ID.reset(token)
        await OrthancClient(http).system()
    finally:
        await http.aclose()
    assert seen[0]["X-Request-ID"] == "trace-123"
    assert "X-Request-ID" not in seen[1]
