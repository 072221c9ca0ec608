"""The upload path as shipped against the one that converts everything: the same files stored.

``read_part10`` keeps raw the elements whose value writes back unchanged (so the fast writer
copies them), and the fingerprint takes each raw element's written form from a per-process
cache (``dicom.canonical``). Neither may change one byte of what is stored, nor any identity
(a changed fingerprint turns an identical re-upload into a ContentConflict), nor the outcome of
a bad file: every corpus file goes through ``ingest_file`` (as sent, and stamped with a folder
assignment) once as shipped — twice, the second time from a warm cache — and once with every
element converted at reading, pydicom's own writer and the uncached fingerprint.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pytest
from pydicom.dataelem import RawDataElement

from dicomgate.codec import transcode as transcode_module
from dicomgate.dicom import canonical, fingerprint, part10, reading
from dicomgate.ingest import worker
from dicomgate.ingest.worker import IngestPlan, ingest_file
from tests.dicom.test_part10_writer import INPUTS, PLANS

Outcome = tuple[bytes, object, object] | str


def _ingested(data: bytes, plan: IngestPlan, tmp: Path) -> Outcome:
    source, output = tmp / "in.dcm", tmp / "out.dcm"
    source.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            outcome = ingest_file(str(source), str(output), plan)
        except Exception as exc:  # the same failure on both sides is the same outcome
            return type(exc).__name__
    return output.read_bytes(), outcome.identity, outcome.result.reason


def _all(tmp: Path) -> dict[str, Outcome]:
    return {
        f"{label} {name}": _ingested(data, plan, tmp)
        for name, data in INPUTS
        for label, plan in PLANS.items()
    }


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Outcome], ...]:
    tmp = tmp_path_factory.mktemp("shipped")
    canonical.cache_clear()
    cold = _all(tmp)
    return cold, _all(tmp)  # the second pass takes every repeated value from the cache


@pytest.fixture
def reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every element converted at reading, pydicom's writer, the uncached fingerprint."""
    monkeypatch.setattr(worker, "read_part10", functools.partial(reading.read_part10, fast=False))
    slow_writer = functools.partial(part10.write_part10, fast=False)
    monkeypatch.setattr(transcode_module, "write_part10", slow_writer)
    monkeypatch.setattr(part10, "write_part10", slow_writer)
    uncached = fingerprint.compared_attributes

    def full(ds: object, *, fast: bool = True) -> bytes:
        return uncached(ds, fast=False)  # type: ignore[arg-type]

    monkeypatch.setattr(fingerprint, "compared_attributes", full)


def test_the_same_files_identities_and_errors(
    shipped: tuple[dict[str, Outcome], ...], reference: None, tmp_path: Path
) -> None:
    cold, warm = shipped
    expected = _all(tmp_path)
    assert [k for k in expected if cold[k] != expected[k]] == []
    assert [k for k in expected if warm[k] != expected[k]] == []
    stored = [v for v in expected.values() if not isinstance(v, str)]
    assert len(stored) > 400  # outputs compared, not only errors


def test_most_elements_stay_raw() -> None:
    """Not a vacuous comparison: most elements of a typical upload are kept as read."""
    name, data = next((n, d) for n, d in INPUTS if n.endswith("CT_small.dcm"))
    ds = reading.read_part10(data)
    raw = sum(isinstance(ds.get_item(tag), RawDataElement) for tag in ds.keys())  # noqa: SIM118
    assert raw > len(ds) * 3 // 4, name
