"""Helpers for the DICOMweb read tests: the server holding the corpus, clients with tokens, and
multipart answers taken apart."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import requests
from dicomweb_client import DICOMwebClient

from tests.dicomweb.corpus import Corpus
from tests.orthanc_process import OrthancProcess

READ_SECRET = "dicomweb-read-tests-secret-0123456789abcdef"
VIEWER_ORIGIN = "https://viewer.hospital.test"


def read_token(*scopes: str, sub: str = "dr.reader") -> str:
    """An HS256 bearer token for the read server."""
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + 600, "scope": " ".join(scopes)}
    return jwt.encode(claims, READ_SECRET, algorithm="HS256")


class HostKeepingSession(requests.Session):
    """dicomweb-client sends ``Host`` without the port (its workaround for a requests bug);
    put the port back, as browsers send it: dicomgate builds its absolute URLs from it."""

    def __init__(self, netloc: str) -> None:
        super().__init__()
        self.netloc = netloc

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        request.headers["Host"] = self.netloc
        return super().send(request, **kwargs)


@dataclass
class ReadServer:
    """dicomgate (auth on) in front of an Orthanc holding the read corpus."""

    url: str
    orthanc: OrthancProcess
    corpus: Corpus

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicomweb"

    def session(self, *scopes: str, sub: str = "dr.reader") -> HostKeepingSession:
        session = HostKeepingSession(urlsplit(self.url).netloc)
        if scopes:
            session.headers["Authorization"] = "Bearer " + read_token(*scopes, sub=sub)
        return session

    def client(self, *scopes: str, sub: str = "dr.reader") -> DICOMwebClient:
        return DICOMwebClient(self.dicomweb, session=self.session(*scopes, sub=sub))

    def orthanc_series_id(self, instance_id: str) -> str:
        """The Orthanc ID of an instance's series."""
        return str(httpx.get(f"{self.orthanc.url}/instances/{instance_id}").json()["ParentSeries"])

    def audit(self, actor: str, *, count: int) -> list[dict[str, Any]]:
        """The audit rows of one caller, oldest first, once there are ``count`` of them (a row
        is written after its answer has been sent)."""
        session = self.session("admin", sub="auditor")
        deadline = time.monotonic() + 30
        while True:
            answer = session.get(
                f"{self.url}/api/ris/audit/", params={"actor": actor, "limit": "200"}
            )
            answer.raise_for_status()
            events: list[dict[str, Any]] = answer.json()["events"]
            if len(events) >= count or time.monotonic() > deadline:
                return list(reversed(events))
            time.sleep(0.05)


def parts(response: requests.Response) -> list[tuple[str, bytes]]:
    """(Content-Type, body) of each part of a multipart/related answer."""
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("multipart/related")
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"')
    out = []
    for chunk in response.content.split(f"--{boundary}".encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, body = chunk.partition(b"\r\n\r\n")
        headers = dict(
            line.split(": ", 1) for line in head.decode().strip().split("\r\n") if ": " in line
        )
        out.append((headers["Content-Type"], body[:-2]))  # CRLF before the next boundary
    return out


def get(
    server: ReadServer, url: str, accept: str | None = None, **headers: str
) -> requests.Response:
    """GET with the dicom:read scope (and an Accept header, if given)."""
    session = server.session("dicom:read")
    if accept is not None:
        headers["Accept"] = accept
    return session.get(url, headers=headers)
