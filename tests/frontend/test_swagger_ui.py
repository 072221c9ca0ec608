"""The API docs work in a real browser, offline: Swagger UI's "Try it out" on the health route.

The real app (create_app with the session settings: real Orthanc, migrated SQLite, auth off)
runs under uvicorn on a free loopback port; headless Debian Chromium, driven by playwright-core
(tests/frontend/swagger_try_it_out.mjs), opens /docs, expands ``getHealth``, clicks "Try it
out" and "Execute", and reports what Swagger UI shows and every URL the page requested.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from dicomgate import __version__
from dicomgate.app import create_app
from dicomgate.settings import Settings
from tests.live_server import serve_in_thread

DRIVER = Path(__file__).resolve().parent / "swagger_try_it_out.mjs"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def live_server(settings: Settings) -> Iterator[str]:
    """The real app under uvicorn in a thread, on a loopback port the kernel picked."""
    # No resuming of other tests' unfinished conversion jobs from the shared database.
    app = create_app(settings.model_copy(update={"resume_conversions_on_start": False}))
    with serve_in_thread(app) as url:
        yield url


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk (PNG spec §11.2.2)."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_try_it_out_on_health_shows_the_live_answer(
    live_server: str, node: str, node_bin: Path, chromium: Path, tmp_path: Path
) -> None:
    direct = httpx.get(f"{live_server}/api/ris/health/", timeout=10)
    assert direct.status_code == 200, direct.text  # a degraded service would make this moot
    screenshot = tmp_path / "swagger-health.png"
    started = time.monotonic()
    proc = subprocess.run(
        [
            node,
            str(DRIVER),
            f"{live_server}/docs",
            "operations-health-getHealth",  # Swagger UI's id: operations-<tag>-<operationId>
            str(screenshot),
            str(tmp_path / "chromium-profile"),  # fresh --user-data-dir
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=DRIVER.parent,
        # HOME: whatever the Chromium launcher writes under ~ stays in the test's folder.
        env={**os.environ, "HOME": str(tmp_path), "CHROMIUM": str(chromium)},
    )
    elapsed = time.monotonic() - started
    (tmp_path / "driver-output.json").write_text(proc.stdout, encoding="utf-8")  # for a look
    assert proc.stdout, proc.stderr[-4000:]
    seen = json.loads(proc.stdout)

    # Offline docs: the page, its Swagger UI bundle, CSS, favicon, the schema and the call all
    # come from this server; nothing from a CDN or anywhere else. Checked first: a page waiting
    # on a CDN also fails the clicks below, and this names the cause.
    origin = urlsplit(live_server)
    requested = [urlsplit(url) for url in seen["requests"]]
    elsewhere = [u.geturl() for u in requested if u.netloc != origin.netloc]
    assert elsewhere == []
    assert (proc.returncode, seen["error"]) == (0, None), seen["console"]

    assert seen["status"] == "200"
    shown = json.loads(seen["body"])
    assert shown["status"] == direct.json()["status"] == "ok"
    assert shown["version"] == __version__
    assert shown["orthanc"]["ok"] is True and shown["workers"]["ok"] is True

    paths = {u.path for u in requested}
    assert {"/docs", "/openapi.json", "/api/ris/health/"} <= paths
    assert any(p.endswith("swagger-ui-bundle.js") for p in paths), paths

    data = screenshot.read_bytes()
    assert png_size(data) == (1280, 1000)
    assert len(data) > 20_000, len(data)  # a rendered page, not a blank frame
    assert elapsed < 30, elapsed
