"""DICOMweb fixtures: dicomgate served by a real uvicorn on loopback, for the synchronous
``dicomweb-client`` (requests) to talk to, and Orthanc seen through its own API.

STOW-RS tests use the session Orthanc (emptied per test); the read tests (QIDO-RS, WADO-RS)
share one corpus in an Orthanc of their own, behind a dicomgate with authentication on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
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
from tests.dicomweb.helpers import MAX_PART_BYTES, MAX_PARTS, StoredView, Stow
from tests.dicomweb.reads import READ_SECRET, VIEWER_ORIGIN, ReadServer
from tests.live_server import serve_in_thread
from tests.orthanc_process import OrthancProcess


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


@pytest.fixture
def stow(dicomgate_url: str) -> Iterator[Stow]:
    session = requests.Session()
    url = f"{dicomgate_url}/dicomweb"
    stow = Stow(url=url, session=session, client=DICOMwebClient(url, session=session))
    session.hooks["response"].append(lambda r, *args, **kwargs: stow.statuses.append(r.status_code))
    with session:
        yield stow


@pytest.fixture
def orthanc_view(clean_orthanc: OrthancProcess) -> StoredView:
    """An emptied Orthanc, seen through its own API."""
    return StoredView(clean_orthanc)


# --- The read tests (QIDO-RS, WADO-RS): their own Orthanc, dicomgate with auth and CORS on ----
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
