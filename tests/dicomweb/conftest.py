"""DICOMweb fixtures: dicomgate served by a real uvicorn on loopback, for the synchronous
``dicomweb-client`` (requests) to talk to, and Orthanc seen through its own API.

STOW-RS tests use the session Orthanc (emptied per test); the read tests (QIDO-RS, WADO-RS)
share one corpus in an Orthanc of their own, behind a dicomgate with authentication on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
import requests
from dicomweb_client import DICOMwebClient
from pydantic import SecretStr

from dicomgate.app import create_app
from dicomgate.settings import Settings
from tests.dicomweb.corpus import (
    HTJ2K_LOSSLESS,
    Corpus,
    Item,
    sent_through_dicomgate,
    stored_directly,
)
from tests.ingest.conftest import OrthancView
from tests.live_server import serve_in_thread
from tests.orthanc_process import OrthancProcess

# Small caps, so the 413 tests send little: every corpus file used here is below 200 kB.
MAX_PART_BYTES = 200_000
MAX_PARTS = 6


@pytest.fixture(scope="module")
def dicomgate_url(settings: Settings) -> Iterator[str]:
    """dicomgate (real lifespan: worker pool, Orthanc client, DB) under uvicorn in a thread."""
    app = create_app(
        settings.model_copy(
            update={
                "workers": 1,
                "max_upload_bytes": MAX_PART_BYTES,
                "max_files": MAX_PARTS,
                # Not other tests' unfinished conversion jobs from the shared database.
                "resume_conversions_on_start": False,
            }
        )
    )
    with serve_in_thread(app) as url:
        yield url


@dataclass
class Stow:
    """A DICOMweb client on dicomgate's /dicomweb, with every HTTP status it was answered."""

    url: str
    session: requests.Session
    client: DICOMwebClient
    statuses: list[int] = field(default_factory=list)


@pytest.fixture
def stow(dicomgate_url: str) -> Iterator[Stow]:
    session = requests.Session()
    url = f"{dicomgate_url}/dicomweb"
    stow = Stow(url=url, session=session, client=DICOMwebClient(url, session=session))
    session.hooks["response"].append(lambda r, *args, **kwargs: stow.statuses.append(r.status_code))
    with session:
        yield stow


class StoredView(OrthancView):
    """OrthancView plus a lookup by SOP Instance UID."""

    def instance_id(self, sop_instance_uid: str) -> str:
        response = httpx.post(f"{self.server.url}/tools/lookup", content=sop_instance_uid)
        response.raise_for_status()
        [match] = [m for m in response.json() if m["Type"] == "Instance"]
        return str(match["ID"])

    def sop_instance_uids(self) -> set[str]:
        return {
            self.get(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]
            for i in self.get("/instances")
        }


@pytest.fixture
def orthanc_view(clean_orthanc: OrthancProcess) -> StoredView:
    """An emptied Orthanc, seen through its own API."""
    return StoredView(clean_orthanc)


# --- The read tests (QIDO-RS, WADO-RS): their own Orthanc, dicomgate with auth and CORS on ----
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


@pytest.fixture(scope="session")
def read_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancProcess]:
    """An Orthanc of their own: other tests empty the shared one."""
    server = OrthancProcess(tmp_path_factory.mktemp("read-orthanc"))
    server.start()
    yield server
    server.stop()


def _store_corpus(server: ReadServer, pydicom_data_dir: Path) -> None:
    sent = sent_through_dicomgate(pydicom_data_dir)
    result = server.client("dicom:write").store_instances(list(sent.values()))
    assert "FailedSOPSequence" not in result, result
    for name, ds in sent.items():
        server.corpus.items[name] = Item(name, ds, HTJ2K_LOSSLESS, patient_id=str(ds.PatientID))
    for name, (ds, data, syntax) in stored_directly().items():
        server.orthanc.store(data)
        server.corpus.items[name] = Item(name, ds, syntax, patient_id=str(ds.PatientID))
    for item in server.corpus.items.values():
        found = httpx.post(f"{server.orthanc.url}/tools/lookup", content=item.sop).json()
        item.orthanc_id = next(str(f["ID"]) for f in found if f["Type"] == "Instance")


@pytest.fixture(scope="session")
def read_server(
    settings: Settings, read_orthanc: OrthancProcess, pydicom_data_dir: Path
) -> Iterator[ReadServer]:
    """Serves the corpus, stored once for the whole session."""
    app = create_app(
        settings.model_copy(
            update={
                "orthanc_url": read_orthanc.url,
                "auth_enabled": True,
                "jwt_secret": SecretStr(READ_SECRET),
                "cors_origins": [VIEWER_ORIGIN],
                "resume_conversions_on_start": False,
            }
        )
    )
    with serve_in_thread(app) as url:
        server = ReadServer(url=url, orthanc=read_orthanc, corpus=Corpus())
        _store_corpus(server, pydicom_data_dir)
        yield server


@pytest.fixture(scope="session")
def corpus(read_server: ReadServer) -> Corpus:
    return read_server.corpus


@pytest.fixture
def reader(read_server: ReadServer) -> DICOMwebClient:
    """A dicomweb-client with the dicom:read scope."""
    return read_server.client("dicom:read")
