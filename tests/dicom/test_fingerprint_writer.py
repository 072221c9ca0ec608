"""The fingerprint's fast writing against the full one: the same compared bytes, file after file.

``compared_attributes`` skips pydicom's whole-dataset ambiguous-VR pass for a file read as
explicit VR little endian, and takes each raw element's written form from a per-process cache.
A changed fingerprint would make an identical re-upload a ``ContentConflict``, so the bytes
must not move: every pydicom corpus file as stored, its transcoded output, and the upload
worker's output (as sent, and stamped with a folder assignment) are fingerprinted both ways.
"""

from __future__ import annotations

import contextlib
import warnings
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from dicomgate.codec.transcode import transcode
from dicomgate.dicom import canonical
from dicomgate.dicom.fingerprint import compared_attributes
from dicomgate.ingest.worker import ingest_file
from tests.dicom.test_part10_writer import INPUTS, PLANS


def _stored_files(tmp: Path) -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    source, output = tmp / "in.dcm", tmp / "out.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, data in INPUTS:
            files.append((f"as stored {name}", data))
            with contextlib.suppress(Exception):
                files.append((f"transcoded {name}", transcode(data).data))
            source.write_bytes(data)
            for label, plan in PLANS.items():
                try:
                    ingest_file(str(source), str(output), plan)
                except Exception:
                    continue
                files.append((f"ingested {label} {name}", output.read_bytes()))
    return files


def _read(data: bytes) -> Dataset | None:
    try:
        return pydicom.dcmread(BytesIO(data), defer_size=1024 * 1024, force=True)
    except Exception:
        return None


def _compared(data: bytes, *, fast: bool) -> bytes | str:
    ds = _read(data)
    if ds is None:
        return "unreadable"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return compared_attributes(ds, fast=fast)
        except Exception as exc:
            return type(exc).__name__


def test_same_compared_bytes_as_the_full_writer(tmp_path: Path) -> None:
    """Also from a warm cache (``dicom.canonical``): the second pass takes every value seen
    before from it, and must give the very same bytes."""
    files = _stored_files(tmp_path)
    canonical.cache_clear()
    cold = [_compared(data, fast=True) for _, data in files]
    warm = [_compared(data, fast=True) for _, data in files]
    full = [_compared(data, fast=False) for _, data in files]
    assert [name for (name, _), a, b in zip(files, cold, full, strict=True) if a != b] == []
    assert [name for (name, _), a, b in zip(files, warm, full, strict=True) if a != b] == []
    explicit = sum(
        1
        for _, data in files
        if (ds := _read(data)) is not None and ds.original_encoding == (False, True)
    )
    assert explicit > 400  # the fast path is what most of them take
