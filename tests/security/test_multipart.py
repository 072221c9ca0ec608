"""Multipart bodies (issue 12 items 3 and 4): every part is counted against the per-request
cap, text fields are few and short, and a body without its closing boundary stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from dicomgate.app import create_app
from dicomgate.kit.spool import MAX_FIELD_BYTES, MAX_NAMED_FIELDS
from dicomgate.settings import Settings
from tests.builders import make_dataset, to_bytes
from tests.orthanc_process import OrthancProcess
from tests.security.test_hostile_input import instance_count

UPLOAD = "/api/ris/upload/dicom/"
FOLDER = "/api/orthanc/upload-patient/"
STOW = "/dicomweb/studies"
BOUNDARY = "dicomgate-test-boundary"
FILE = to_bytes(make_dataset())


@pytest.fixture
async def capped_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose request cap (20,000 bytes) is a few times one test file."""
    small = settings.model_copy(update={"max_request_bytes": 20_000, "max_files": 4, "workers": 1})
    app = create_app(small)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def part(name: str, value: bytes, *, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


def body(*parts: bytes, close: bool = True) -> bytes:
    return b"".join(parts) + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


async def post(client: httpx.AsyncClient, path: str, data: bytes, media: str = "form-data"):
    headers = {"Content-Type": f"multipart/{media}; boundary={BOUNDARY}"}
    if media == "related":
        headers["Content-Type"] += '; type="application/dicom"'
    return await client.post(path, content=data, headers=headers)


class TestEveryPartCounts:
    async def test_text_fields_count_against_the_request_cap(
        self, capped_client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        fields = [part("note", b"x" * 4000) for _ in range(5)]  # 20,000 bytes of text
        r = await post(capped_client, UPLOAD, body(part("file", FILE, filename="a.dcm"), *fields))
        assert r.status_code == 413, r.text
        assert r.json()["type"] == "UploadTooLarge"
        assert "per request" in r.json()["error"]
        assert await instance_count(clean_orthanc) == 0

    async def test_the_same_file_alone_fits(
        self, capped_client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        r = await post(capped_client, UPLOAD, body(part("file", FILE, filename="a.dcm")))
        assert r.status_code == 201, r.text

    async def test_fields_beyond_one_per_file_and_a_few_are_refused(
        self, capped_client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        allowed = 4 + MAX_NAMED_FIELDS  # max_files 4
        fields = [part("series_path", b"s") for _ in range(allowed + 1)]
        r = await post(capped_client, FOLDER, body(part("files", FILE, filename="a.dcm"), *fields))
        assert r.status_code == 413, r.text
        assert f"Too many form fields: at most {allowed} per request" in r.json()["error"]
        assert await instance_count(clean_orthanc) == 0

    async def test_a_long_text_field_is_refused(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        too_long = part("patient_id", b"P" * (MAX_FIELD_BYTES + 1))
        r = await post(client, UPLOAD, body(too_long, part("file", FILE, filename="a.dcm")))
        assert r.status_code == 413, r.text
        assert f"'patient_id' is longer than {MAX_FIELD_BYTES} bytes" in r.json()["error"]
        assert await instance_count(clean_orthanc) == 0

    async def test_a_part_with_too_many_header_lines_is_refused(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        headers = "".join(f"X-H{i}: v\r\n" for i in range(9))
        bad = (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n'
                f"{headers}\r\n"
            ).encode()
            + FILE
            + b"\r\n"
        )
        r = await post(client, UPLOAD, body(bad))
        assert r.status_code == 400, r.text
        assert "malformed" in r.json()["error"]
        assert await instance_count(clean_orthanc) == 0


class TestClosingBoundary:
    @pytest.mark.parametrize("path", [UPLOAD, FOLDER])
    async def test_a_body_cut_short_stores_nothing(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess, path: str
    ) -> None:
        fields = [part("patient_id", b"P1")] if path == FOLDER else []
        file_part = part("files" if path == FOLDER else "file", FILE, filename="a.dcm")
        inside_the_file = body(*fields, file_part)[: -len(FILE) // 2]
        after_the_file = body(*fields, file_part, close=False)
        for cut in (inside_the_file, after_the_file):
            r = await post(client, path, cut)
            assert r.status_code == 400, r.text
            assert r.json()["error"] == (
                "The multipart body ends before its closing boundary: the upload is "
                "incomplete (cut off in transit?); nothing was stored"
            )
        assert await instance_count(clean_orthanc) == 0

    async def test_stow_without_closing_boundary_stores_nothing(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        data = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + FILE + b"\r\n"
        r = await post(client, STOW, data, "related")
        assert r.status_code == 400, r.text
        assert "ends before its closing boundary" in r.json()["error"]
        assert await instance_count(clean_orthanc) == 0
