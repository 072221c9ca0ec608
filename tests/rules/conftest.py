"""An Orthanc that accepts C-STORE on its DICOM port, as the modalities' images arrive."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.orthanc_process import OrthancProcess
from tests.rules.helpers import ORTHANC_AET


@pytest.fixture(scope="session")
def dicom_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancProcess]:
    """Orthanc with its DICOM server on (any calling AE may store; StableAge 1 s)."""
    server = OrthancProcess(
        tmp_path_factory.mktemp("orthanc-dicom"),
        extra_config={"DicomServerEnabled": True, "DicomAet": ORTHANC_AET},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def arrivals(dicom_orthanc: OrthancProcess) -> OrthancProcess:
    """The C-STORE Orthanc, running and emptied before the test."""
    dicom_orthanc.start()
    dicom_orthanc.clear()
    return dicom_orthanc
