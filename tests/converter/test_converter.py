"""dicomgate.converter, the public Python API: each function round-trips bit-exact (checked with
pylibjpeg, not the encoder's own decoder), reports pass-throughs, and raises its documented
errors; the options are validated; the public surface is what the module says."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicomgate import converter
from dicomgate.converter import ConvertOptions
from tests.builders import make_dataset, to_bytes
from tests.codec.helpers import (
    assert_same_except_allowed,
    frames_of,
    independent_pixels,
    parse_codestream,
    read,
    source_pixels,
)

HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
PUBLIC = {
    "ConvertOptions",
    "ConvertResult",
    "DicomgateError",
    "ImageTooLarge",
    "InvalidDicom",
    "NotDicom",
    "convert_bytes",
    "convert_dataset",
    "convert_file",
}


def _ct(**kwargs: object) -> bytes:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 4096, size=(2, 40, 30), dtype=np.uint16)
    return to_bytes(make_dataset(rows=40, columns=30, frames=2, pixels=pixels, **kwargs))


def _no_pixels() -> bytes:
    ds = make_dataset()
    del ds.PixelData
    return to_bytes(ds)


class TestConvertBytes:
    def test_round_trip_is_bit_exact(self) -> None:
        data = _ct()
        result = converter.convert_bytes(data)
        assert (result.converted, result.verified, result.reason) == (True, True, None)
        assert (result.source_transfer_syntax, result.transfer_syntax) == (
            EXPLICIT_LE,
            HTJ2K_LOSSLESS,
        )
        assert result.frames == 2 and len(frames_of(result.data)[0]) == 2
        assert (result.original_size, result.size) == (len(data), len(result.data))
        assert np.array_equal(independent_pixels(result.data), source_pixels(data))
        assert result.sop_instance_uid == read(data).SOPInstanceUID
        assert result.dataset.file_meta.TransferSyntaxUID == HTJ2K_LOSSLESS
        assert result.dataset is result.dataset  # parsed once
        assert_same_except_allowed(read(data), read(result.data))
        assert result.path is None

    def test_a_pass_through_is_the_input_with_its_reason(self) -> None:
        data = _no_pixels()
        result = converter.convert_bytes(data)
        assert (result.converted, result.verified) == (False, False)
        assert (result.reason, result.reason_text) == (
            "no_pixel_data",
            "no pixel data to transcode",
        )
        assert result.data is data and result.transfer_syntax == EXPLICIT_LE

    @pytest.mark.parametrize(
        ("target", "syntax"),
        [("htj2k-rpcl", "1.2.840.10008.1.2.4.202"), ("jpeg2000", "1.2.840.10008.1.2.4.90")],
    )
    def test_targets(self, target: str, syntax: str) -> None:
        data = _ct()
        result = converter.convert_bytes(data, options=ConvertOptions(target=target))  # type: ignore[arg-type]
        assert result.transfer_syntax == syntax and result.verified
        assert read(result.data).file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(independent_pixels(result.data), source_pixels(data))
        if target == "htj2k-rpcl":
            assert parse_codestream(frames_of(result.data)[0][0]).progression == 2

    def test_lossy_quality_makes_a_new_lossy_instance(self) -> None:
        data = _ct()
        result = converter.convert_bytes(data, options=ConvertOptions(lossy_quality=90))
        assert result.converted and not result.verified  # lossy: not bit-exact by design
        assert result.transfer_syntax == "1.2.840.10008.1.2.4.203"
        assert result.sop_instance_uid != read(data).SOPInstanceUID
        assert result.dataset.LossyImageCompression == "01"

    @pytest.mark.parametrize(
        ("data", "options", "error", "message"),
        [
            (b"a text file, not DICOM", None, converter.NotDicom, r"^The file is not DICOM$"),
            (
                _ct()[:-40],
                None,
                converter.InvalidDicom,
                r"^The DICOM file is truncated: Pixel Data is 4,760 bytes",
            ),
            (
                _ct(SOPInstanceUID="1.2.abc"),
                None,
                converter.InvalidDicom,
                r"^The DICOM file's SOPInstanceUID \(0008,0018\) is not a UID: '1.2.abc'$",
            ),
            (
                _ct(),
                ConvertOptions(max_pixels=1000),
                converter.ImageTooLarge,
                r"= 2,400 pixels, more than the limit of 1,000$",
            ),
        ],
        ids=["not-dicom", "truncated", "bad-uid", "too-large"],
    )
    def test_errors(
        self,
        data: bytes,
        options: ConvertOptions | None,
        error: type[Exception],
        message: str,
    ) -> None:
        with pytest.raises(error, match=message) as raised:
            converter.convert_bytes(data, options=options)
        assert isinstance(raised.value, converter.DicomgateError)


class TestConvertDataset:
    def test_round_trip_leaves_the_callers_dataset_as_it_was(self, corpus_dir: Path) -> None:
        ds = pydicom.dcmread(corpus_dir / "MR_small.dcm")
        before = copy.deepcopy(ds)
        result = converter.convert_dataset(ds)
        assert result.converted and result.verified and result.original_size is None
        assert result.transfer_syntax == HTJ2K_LOSSLESS
        assert ds == before and ds.file_meta == before.file_meta
        assert np.array_equal(independent_pixels(result.data), ds.pixel_array)
        assert result.dataset.SOPInstanceUID == ds.SOPInstanceUID

    def test_an_edited_dataset_is_converted_as_edited(self) -> None:
        ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(_ct()))
        ds.PatientName = "Edited^Name"
        result = converter.convert_dataset(ds)
        assert result.dataset.PatientName == "Edited^Name"
        assert np.array_equal(independent_pixels(result.data), ds.pixel_array)

    def test_a_pass_through_writes_the_dataset_as_it_is(self, corpus_dir: Path) -> None:
        ds = pydicom.dcmread(corpus_dir / "MR_small_padded.dcm")
        result = converter.convert_dataset(ds)
        assert (result.converted, result.reason) == (False, "padded_pixel_data")
        assert result.dataset.PixelData == ds.PixelData
        assert result.transfer_syntax == result.source_transfer_syntax == EXPLICIT_LE

    def test_an_invalid_identity_is_refused(self, pydicom_data_dir: Path) -> None:
        ds = pydicom.dcmread(pydicom_data_dir / "bad_sequence.dcm")
        with pytest.raises(converter.InvalidDicom, match=r"SOPInstanceUID \(0008,0018\)"):
            converter.convert_dataset(ds)


class TestConvertFile:
    def test_writes_the_converted_file(self, tmp_path: Path, corpus_dir: Path) -> None:
        source = corpus_dir / "SC_rgb_rle_2frame.dcm"
        original = source.read_bytes()
        result = converter.convert_file(source, tmp_path / "out.dcm")
        written = (tmp_path / "out.dcm").read_bytes()
        assert result.path == tmp_path / "out.dcm" and written == result.data
        assert result.converted and result.frames == 2
        assert np.array_equal(independent_pixels(written), source_pixels(original))
        assert source.read_bytes() == original
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.dcm"]

    def test_a_pass_through_is_copied_unchanged(self, tmp_path: Path, corpus_dir: Path) -> None:
        source = corpus_dir / "JPEG-lossy.dcm"
        result = converter.convert_file(str(source), str(tmp_path / "kept.dcm"))
        assert (result.converted, result.reason) == (False, "lossy_source")
        assert (tmp_path / "kept.dcm").read_bytes() == source.read_bytes()

    def test_a_refused_file_writes_nothing(self, tmp_path: Path) -> None:
        source = tmp_path / "notes.txt"
        source.write_bytes(b"not a DICOM file" * 10)
        with pytest.raises(converter.NotDicom):
            converter.convert_file(source, tmp_path / "out.dcm")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

    def test_the_input_is_never_the_output(self, tmp_path: Path) -> None:
        source, data = tmp_path / "ct.dcm", _ct()
        source.write_bytes(data)
        with pytest.raises(ValueError, match="is never overwritten"):
            converter.convert_file(source, tmp_path / "." / "ct.dcm")
        assert source.read_bytes() == data

    def test_a_missing_input_is_an_os_error(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            converter.convert_file(tmp_path / "missing.dcm", tmp_path / "out.dcm")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "webp"}, "target must be one of htj2k, htj2k-rpcl, jpeg2000"),
        ({"lossy_quality": 0}, r"lossy_quality must be None \(lossless\) or in \(0, 100\]"),
        ({"lossy_quality": 101}, r"lossy_quality must be None"),
        ({"max_pixels": 0}, "max_pixels must be at least 1"),
    ],
)
def test_bad_options_are_a_value_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConvertOptions(**kwargs)  # type: ignore[arg-type]


def test_the_public_surface_is_what_the_module_says() -> None:
    assert set(converter.__all__) == PUBLIC
    for name in PUBLIC:
        assert inspect.getdoc(getattr(converter, name)), name
        assert f":{'func' if name.startswith('convert_') else 'class'}:`{name}`" in (
            converter.__doc__ or ""
        )
    defaults = ConvertOptions()
    assert (defaults.target, defaults.lossy_quality) == ("htj2k", None)
