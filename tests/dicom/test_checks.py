"""The checks a parsed upload passes first: identity (PS3.3 C.12.1, C.7.2.1, C.7.3.1), file meta
(PS3.10 §7.1), nesting depth, study of a STOW request (PS3.18 §10.5.1)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
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
        [
            ("SOPClassUID", r"^The DICOM file has no SOPClassUID \(0008,0016\)$"),
            ("SOPInstanceUID", r"^The DICOM file has no SOPInstanceUID \(0008,0018\)$"),
        ],
    )
    def test_the_codec_needs_only_the_sop_uids(self, keyword: str, message: str) -> None:
        ds = make_dataset()
        del ds.StudyInstanceUID, ds.SeriesInstanceUID  # not the codec's concern
        assert require_sop_uids(ds) == str(ds.SOPInstanceUID)
        delattr(ds, keyword)
        with pytest.raises(InvalidDicom, match=message):
            require_sop_uids(ds)

    @pytest.mark.parametrize(
        ("keyword", "tag"),
        [
            ("SOPClassUID", "(0008,0016)"),
            ("SOPInstanceUID", "(0008,0018)"),
            ("StudyInstanceUID", "(0020,000D)"),
            ("SeriesInstanceUID", "(0020,000E)"),
        ],
    )
    @pytest.mark.parametrize("check", [require_sop_identity, require_sop_uids])
    def test_a_present_identity_that_is_not_a_uid_is_named(
        self, check: Callable[[Dataset], object], keyword: str, tag: str
    ) -> None:
        # pydicom-data's bad_sequence.dcm: hex digests where the UIDs should be.
        ds = make_dataset()
        setattr(ds, keyword, "dccc9599087131742838cc1162a630fe")
        with pytest.raises(
            InvalidDicom,
            match=rf"^The DICOM file's {keyword} {re.escape(tag)} is not a UID: 'dccc9599",
        ):
            check(ds)


class TestFileMetaUids:
    """PS3.10 §7.1: Media Storage SOP Class/Instance UIDs are copies of the dataset's."""

    @pytest.mark.parametrize(
        ("keyword", "tag"),
        [("MediaStorageSOPClassUID", "(0002,0002)"), ("MediaStorageSOPInstanceUID", "(0002,0003)")],
    )
    @pytest.mark.parametrize("check", [require_sop_identity, require_sop_uids])
    def test_one_that_is_not_a_uid_is_named(
        self, check: Callable[[Dataset], object], keyword: str, tag: str
    ) -> None:
        ds = make_dataset()
        setattr(ds.file_meta, keyword, "1.2.x")
        with pytest.raises(
            InvalidDicom,
            match=rf"^The DICOM file's {keyword} {re.escape(tag)} is not a UID: '1.2.x'$",
        ):
            check(ds)

    def test_the_dataset_wins_a_disagreement_and_it_is_logged(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # pydicom's rtplan.dcm and rtdose.dcm: valid, but not the dataset's SOP Instance UID.
        ds = make_dataset()
        ds.file_meta.MediaStorageSOPInstanceUID = "1.2.999.999.99.9.9999.9999.20030903150023"
        with caplog.at_level(logging.WARNING, logger="dicomgate.dicom.checks"):
            require_sop_identity(ds)
            assert require_sop_uids(ds) == str(ds.SOPInstanceUID)
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 2
        assert warnings[0] == (
            "File meta MediaStorageSOPInstanceUID (0002,0003) "
            "1.2.999.999.99.9.9999.9999.20030903150023 differs from the dataset's "
            f"SOPInstanceUID (0008,0018) {ds.SOPInstanceUID}: the dataset's is kept (PS3.10 §7.1)"
        )

    def test_absent_or_empty_copies_are_written_afresh(self) -> None:
        ds = make_dataset()
        ds.file_meta.MediaStorageSOPClassUID = ""
        del ds.file_meta.MediaStorageSOPInstanceUID
        require_sop_identity(ds)
        assert require_sop_uids(ds) == str(ds.SOPInstanceUID)


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
