"""The fast Part 10 writer against pydicom's own writer: the same bytes, file after file.

``write_part10`` copies elements still as read (raw) itself instead of passing each through
pydicom's per-element writer. The output must not change by one byte: every file of the pydicom
corpora and a set of generated files (explicit and implicit VR, big endian, colour, multi-frame,
sequences, a character set, undefined-length sequences) goes through the codec (``transcode``)
and through the upload worker with patient stamping and a folder assignment
(``ingest_file``), once with the fast writer and once with pydicom's, and the outputs (or the
errors) and the identities must be equal.
"""

from __future__ import annotations

import datetime
import functools
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomgate.codec import transcode as transcode_module
from dicomgate.codec.transcode import TranscodeOptions, transcode
from dicomgate.dicom import part10
from dicomgate.dicom.demographics import Demographics
from dicomgate.dicom.unify import SeriesAssignment
from dicomgate.ingest.worker import IngestPlan, ingest_file
from tests.corpora import differential_inputs

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
PLANS = {
    "as sent": IngestPlan(None, None, TranscodeOptions(), NOW),
    "stamped": IngestPlan(
        Demographics("P9", "Doe", "Jäne", datetime.date(1970, 1, 31), "female"),
        SeriesAssignment("1.2.826.0.1.9.1", "Study é", "1.2.826.0.1.9.2", 7, "Series", None, None),
        TranscodeOptions(),
        NOW,
    ),
}


INPUTS = differential_inputs()


@pytest.fixture
def reference_writer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """pydicom's own writer wherever dicomgate writes a Part 10 file (the differential's
    reference side; the fast side is the code as shipped)."""
    slow = functools.partial(part10.write_part10, fast=False)
    monkeypatch.setattr(transcode_module, "write_part10", slow)
    monkeypatch.setattr(part10, "write_part10", slow)
    yield


def _transcoded(data: bytes) -> bytes | str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return transcode(data).data
        except Exception as exc:  # the same failure on both sides is the same outcome
            return type(exc).__name__


def _ingested(data: bytes, plan: IngestPlan, tmp: Path) -> tuple[bytes, object] | str:
    source, output = tmp / "in.dcm", tmp / "out.dcm"
    source.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            outcome = ingest_file(str(source), str(output), plan)
        except Exception as exc:
            return type(exc).__name__
    return output.read_bytes(), outcome.identity


@pytest.fixture(scope="module")
def fast_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("fast")
    found: dict[str, object] = {}
    for name, data in INPUTS:
        found[f"transcode {name}"] = _transcoded(data)
        for label, plan in PLANS.items():
            found[f"ingest {label} {name}"] = _ingested(data, plan, tmp)
    return found


def test_the_fast_writer_takes_most_files(fast_outputs: dict[str, object]) -> None:
    """Not a vacuous comparison: the fast path is the one most corpus files take."""
    taken = 0
    original = part10._write_body

    def counting(*args: object) -> None:
        nonlocal taken
        taken += 1
        original(*args)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(part10, "_write_body", counting)
        for _, data in INPUTS:
            _transcoded(data)
    assert taken >= 90


def test_same_bytes_as_pydicoms_writer(
    fast_outputs: dict[str, object], reference_writer: None, tmp_path: Path
) -> None:
    differing = []
    for name, data in INPUTS:
        if _transcoded(data) != fast_outputs[f"transcode {name}"]:
            differing.append(f"transcode {name}")
        for label, plan in PLANS.items():
            if _ingested(data, plan, tmp_path) != fast_outputs[f"ingest {label} {name}"]:
                differing.append(f"ingest {label} {name}")
    assert differing == []
    converted = [v for v in fast_outputs.values() if isinstance(v, bytes | tuple)]
    assert len(converted) > 400  # outputs compared, not only errors
