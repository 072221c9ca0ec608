"""Helpers for the STOW-RS tests: caps, the client, and Orthanc seen through its own API."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import requests
from dicomweb_client import DICOMwebClient

from tests.ingest.helpers import OrthancView

# Small caps, so the 413 tests send little: every corpus file used here is below 200 kB.
MAX_PART_BYTES = 200_000


MAX_PARTS = 6


@dataclass
class Stow:
    """A DICOMweb client on dicomgate's /dicomweb, with every HTTP status it was answered."""

    url: str
    session: requests.Session
    client: DICOMwebClient
    statuses: list[int] = field(default_factory=list)


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
