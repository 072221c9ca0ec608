"""The checks a parsed upload passes first: identity (PS3.3 C.12.1, C.7.2.1, C.7.3.1), file meta
(PS3.10 §7.1), nesting depth, study of a STOW request (PS3.18 §10.5.1)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomgate.dicom.checks import (
    require_file_meta,
    require_shallow_nesting,
    require_sop_identity,
    require_sop_uids,
    require_study,
)
from dicomgate.errors import InvalidDicom, StudyMismatch
from tests.builders import make_dataset

STUDY = "1.2.826.0.1.3680043.10.9.1"


class TestSopIdentity:
    @pytest.mark.parametrize(
        "changes",
        [{}, {"SOPInstanceUID": "1.2.840.0123.4"}, {"StudyInstanceUID": "1.2.3\x00"}],
        ids=["generated", "leading-zero", "null-padded"],
    )
    def test_valid(self, changes: dict[str, Any]) -> None:
        ds = make_dataset(**changes)
        require_sop_identity(ds)
        assert require_sop_uids(ds) == str(ds.SOPInstanceUID)

    @pytest.mark.parametrize(
        ("keyword", "value", "message"),
        [
            ("SOPClassUID", None, r"no SOPClassUID \(0008,0016\)"),
            ("SOPInstanceUID", "", r"no SOPInstanceUID \(0008,0018\)"),
            ("StudyInstanceUID", None, r"no StudyInstanceUID \(0020,000D\)"),
            ("SeriesInstanceUID", None, r"no SeriesInstanceUID \(0020,000E\)"),
            ("SOPInstanceUID", "1..2", r"SOPInstanceUID \(0008,0018\) is not a UID: '1..2'"),
            ("StudyInstanceUID", "1.2.", r"StudyInstanceUID \(0020,000D\) is not a UID"),
        ],
    )
    def test_invalid(self, keyword: str, value: str | None, message: str) -> None:
        ds = make_dataset()
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
        with pytest.raises(InvalidDicom, match=message):
            require_sop_identity(ds)

    @pytest.mark.parametrize(
        ("keyword", "message"),
        [("SOPClassUID", "no SOP Class UID"), ("SOPInstanceUID", "no SOP Instance UID")],
    )
    def test_the_codec_needs_only_the_sop_uids(self, keyword: str, message: str) -> None:
        ds = make_dataset()
        del ds.StudyInstanceUID  # not the codec's concern
        assert require_sop_uids(ds) == str(ds.SOPInstanceUID)
        delattr(ds, keyword)
        with pytest.raises(InvalidDicom, match=message):
            require_sop_uids(ds)


def test_file_meta_must_name_the_transfer_syntax() -> None:
    ds = make_dataset()
    require_file_meta(ds)
    del ds.file_meta.TransferSyntaxUID
    with pytest.raises(InvalidDicom, match="no Transfer Syntax UID"):
        require_file_meta(ds)


def _nested(depth: int) -> Dataset:
    ds = Dataset()
    inner = ds
    for _ in range(depth):
        item = Dataset()
        inner.ReferencedSeriesSequence = Sequence([item])
        inner = item
    return ds


@pytest.mark.parametrize("depth", [0, 1, 32])
def test_nesting_within_the_limit(depth: int) -> None:
    require_shallow_nesting(_nested(depth))


@pytest.mark.parametrize("depth", [33, 200])
def test_nesting_over_the_limit(depth: int) -> None:
    with pytest.raises(InvalidDicom, match="deeper than 32 levels"):
        require_shallow_nesting(_nested(depth))


class TestRequiredStudy:
    @pytest.mark.parametrize("stored", [STUDY, STUDY + "\x00", STUDY + " "])
    def test_same_study(self, stored: str) -> None:
        require_study(make_dataset(study_uid=stored), STUDY)

    @pytest.mark.parametrize(("stored", "shown"), [(STUDY + ".2", STUDY + ".2"), (None, "(none)")])
    def test_other_study(self, stored: str | None, shown: str) -> None:
        ds = make_dataset()
        if stored is None:
            del ds.StudyInstanceUID
        else:
            ds.StudyInstanceUID = stored
        with pytest.raises(StudyMismatch, match=rf"belongs to study {re.escape(shown)}, not"):
            require_study(ds, STUDY)
