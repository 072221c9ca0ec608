"""Small helpers of the identity tests: uploads, and what Orthanc holds under one SOP UID."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
from pydicom.dataset import Dataset

from tests.builders import make_dataset
from tests.ingest.helpers import OrthancView

UPLOAD = "/api/ris/upload/dicom/"
FOLDER = "/api/orthanc/upload-patient/"
MOVE_TEXT = "Moving images between patients is a separate administrative action"


def image(seed: int = 7, **tags: Any) -> Dataset:
    """A 32×32 16-bit CT with noise pixels (``seed`` picks them) and fixed UIDs if given."""
    pixels = np.random.default_rng(seed).integers(0, 4096, size=(32, 32), dtype=np.uint16)
    return make_dataset(rows=32, columns=32, pixels=pixels, patient_id="FILE-ID", **tags)


def part(data: bytes, name: str = "image.dcm", field: str = "file") -> tuple[str, Any]:
    return (field, (name, data, "application/dicom"))


def holders(stored: OrthancView, sop_instance_uid: str) -> list[tuple[str, str]]:
    """(Orthanc ID, Patient ID) of every instance Orthanc holds under ``sop_instance_uid``."""
    found = httpx.post(
        f"{stored.server.url}/tools/find",
        json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_instance_uid}},
        timeout=30,
    ).json()
    out = []
    for orthanc_id in found:
        patient = stored.get(f"/instances/{orthanc_id}/patient")
        out.append((orthanc_id, patient["MainDicomTags"]["PatientID"]))
    return sorted(out)
