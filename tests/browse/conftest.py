"""Browse fixtures: a clean Orthanc and a helper that stores generated datasets in it."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from tests.browse.helpers import Store
from tests.builders import to_bytes
from tests.orthanc_process import OrthancProcess


@pytest.fixture
def store(clean_orthanc: OrthancProcess) -> Store:
    """Store a dataset through Orthanc's REST API in an emptied Orthanc; return its answer."""

    def _store(ds: Dataset) -> dict[str, str]:
        return clean_orthanc.store(to_bytes(ds))

    return _store
