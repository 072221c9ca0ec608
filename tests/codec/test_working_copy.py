"""``transcode_dataset`` works on a copy that shares the elements it does not rewrite.

Two properties, over the whole pydicom corpus and generated files (explicit and implicit VR,
big endian, colour, multi-frame, sequences, a character set), as read for an upload and after
patient stamping:

- the caller's dataset is untouched (its pass-through fallback is what it was): the same
  elements with the same values and VRs, the same file meta and preamble, written to the same
  bytes;
- the output is the one a deep copy of the whole dataset gives, byte for byte.
"""

from __future__ import annotations

import copy
import datetime
import warnings
from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset

from dicomgate.codec import transcode as transcode_module
from dicomgate.codec.transcode import TranscodeOptions, transcode_dataset
from dicomgate.dicom.demographics import Demographics
from dicomgate.dicom.part10 import detached_copy, write_part10
from dicomgate.dicom.reading import read_part10
from dicomgate.dicom.stamp import coerce_attributes, patient_changes
from dicomgate.errors import DicomgateError
from tests.corpora import differential_inputs

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
PATIENT = Demographics("P9", "Doe", "Jane", datetime.date(1970, 1, 31), "female")


def _datasets() -> Iterator[tuple[str, Dataset]]:
    for name, data in differential_inputs():
        for stamped in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    ds = read_part10(data)
                except DicomgateError:
                    continue
                if stamped:
                    coerce_attributes(ds, patient_changes(PATIENT), now=NOW)
            yield f"{name}{' stamped' if stamped else ''}", ds


def _written(ds: Dataset) -> bytes | str:
    try:
        return write_part10(detached_copy(ds), fast=False)
    except Exception as exc:
        return type(exc).__name__


def _elements(ds: Dataset) -> list[tuple[object, ...]]:
    return [(e.tag, e.VR, e.value, e.is_undefined_length) for e in ds.iterall()]


def _outcome(ds: Dataset) -> tuple[object, ...] | str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = transcode_dataset(ds, TranscodeOptions(), original_size=0)
        except DicomgateError as exc:
            return type(exc).__name__
    return result.data, result.converted, result.reason, result.frame_crc32


CASES = list(_datasets())


def test_the_callers_dataset_is_untouched() -> None:
    touched = []
    converted = 0
    for name, ds in CASES:
        before = (_written(ds), _elements(ds), copy.deepcopy(ds.file_meta), ds.preamble)
        outcome = _outcome(ds)
        converted += isinstance(outcome, tuple) and bool(outcome[1])
        after = (_written(ds), _elements(ds), ds.file_meta, ds.preamble)
        if after != before:
            touched.append(name)
    assert touched == []
    assert converted > 100  # not vacuous: most of these were transcoded


def test_the_output_is_the_one_a_deep_copy_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = {name: _outcome(copy.deepcopy(ds)) for name, ds in CASES}
    monkeypatch.setattr(
        transcode_module, "_working_copy", lambda ds, source, options: detached_copy(ds)
    )
    deep = {name: _outcome(copy.deepcopy(ds)) for name, ds in CASES}
    assert [name for name in shared if shared[name] != deep[name]] == []
