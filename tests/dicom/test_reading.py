"""The one DICOM reader: strict for uploads (``read_part10``), lenient for the codec's input
(``read_dataset``); every parse failure is a NotDicom (415) or InvalidDicom (400)."""

from __future__ import annotations

import pytest

from dicomgate.dicom.reading import read_dataset, read_part10
from dicomgate.errors import InvalidDicom, NotDicom
from tests.builders import make_dataset, to_bytes

GOOD = to_bytes(make_dataset())


class TestReadPart10:
    def test_valid(self) -> None:
        ds = read_part10(GOOD)
        assert ds.buffer is None  # everything read: the caller's bytes are not kept alive

    @pytest.mark.parametrize(
        ("data", "error", "message"),
        [
            (b"", NotDicom, "The file is empty"),
            (b"hello" * 40, NotDicom, "no 'DICM' prefix"),
            (GOOD[:200], InvalidDicom, "no Transfer Syntax UID"),
            (GOOD[:-20], InvalidDicom, "truncated: Pixel Data is"),
        ],
        ids=["empty", "not-dicom", "cut-in-the-file-meta", "cut-in-the-pixels"],
    )
    def test_invalid(self, data: bytes, error: type[Exception], message: str) -> None:
        with pytest.raises(error, match=message):
            read_part10(data)


class TestReadDataset:
    def test_part10(self) -> None:
        assert str(read_dataset(GOOD).SOPInstanceUID)

    @pytest.mark.parametrize(
        ("data", "error", "message"),
        [
            (b"", NotDicom, "too short"),
            (b"hello world" * 50, NotDicom, "not DICOM"),
            (b"\x89PNG\r\n\x1a\n" + b"\0" * 300, NotDicom, "not DICOM"),
        ],
        ids=["empty", "text", "png"],
    )
    def test_invalid(self, data: bytes, error: type[Exception], message: str) -> None:
        with pytest.raises(error, match=message):
            read_dataset(data)
