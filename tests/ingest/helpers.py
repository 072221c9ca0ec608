"""Helpers for the ingest tests: both databases, and Orthanc seen through its own API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from io import BytesIO
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomgate.dicom.demographics import Demographics
from tests.databases import KINDS
from tests.orthanc_process import OrthancProcess

MakePatient = Callable[..., Awaitable[Demographics]]


# Runs the marked test on SQLite and on PostgreSQL (overrides the ``db_kind`` fixture below).
BOTH_DATABASES = pytest.mark.parametrize("db_kind", KINDS)


class OrthancView:
    """Read what Orthanc really stored, through its own REST API (not through dicomgate)."""

    def __init__(self, server: OrthancProcess) -> None:
        self.server = server

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.server.url}{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def instance_count(self) -> int:
        return int(self.get("/statistics")["CountInstances"])

    def file(self, instance_id: str) -> bytes:
        response = httpx.get(f"{self.server.url}/instances/{instance_id}/file", timeout=30)
        response.raise_for_status()
        return response.content

    def dataset(self, instance_id: str) -> Dataset:
        return pydicom.dcmread(BytesIO(self.file(instance_id)))

    def transfer_syntax(self, instance_id: str) -> str:
        header = self.get(f"/instances/{instance_id}/header", simplify="")
        return str(header["TransferSyntaxUID"])
