"""STOW-RS fixtures: dicomgate served by a real uvicorn on loopback, for the synchronous
``dicomweb-client`` (requests) to talk to, and Orthanc seen through its own API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import requests
from dicomweb_client import DICOMwebClient

from dicomgate.app import create_app
from dicomgate.settings import Settings
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
