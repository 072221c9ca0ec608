"""STOW-RS fixtures: dicomgate served by a real uvicorn on loopback, for the synchronous
``dicomweb-client`` (requests) to talk to, and Orthanc seen through its own API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from dicomweb_client import DICOMwebClient

from dicomgate.app import create_app
from dicomgate.settings import Settings
from tests.dicomweb.helpers import MAX_PART_BYTES, MAX_PARTS, StoredView, Stow
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
