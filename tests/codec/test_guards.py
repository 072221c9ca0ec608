"""Guard rails and the less common paths: bad input, bombs, fallback, lossy, datasets, pool."""

from __future__ import annotations

import time
import tracemalloc
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicomgate.codec.capabilities import HTJ2K, HTJ2K_LOSSLESS, JPEG2000_LOSSLESS
from dicomgate.codec.pool import WorkerPool
from dicomgate.codec.transcode import TranscodeOptions, frame_crc32s, transcode, transcode_dataset
from dicomgate.errors import ImageTooLarge, InvalidDicom, NotDicom
from tests.builders import make_dataset, to_bytes
from tests.codec.helpers import (
    assert_same_except_allowed,
    frames_of,
    independent_pixels,
    parse_codestream,
    read,
    source_pixels,
)


def _ct(**kw: object) -> bytes:
    return to_bytes(make_dataset(rows=9, columns=11, **kw))  # type: ignore[arg-type]


class TestBadInput:
    @pytest.mark.parametrize("data", [b"", b"hello world" * 50, b"\x89PNG\r\n\x1a\n" + b"\0" * 300])
    def test_not_dicom(self, data: bytes) -> None:
        with pytest.raises(NotDicom, match="not DICOM"):
            transcode(data)

    def test_truncated_header(self) -> None:
        data = _ct()
        # Cut inside the dataset: the lenient reader keeps what precedes SOP Class UID.
        with pytest.raises(
            InvalidDicom, match=r"^The DICOM file has no SOPClassUID \(0008,0016\)$"
        ):
            transcode(data[:200])

    def test_truncated_pixel_data(self) -> None:
        data = _ct()
        with pytest.raises(InvalidDicom, match=r"Pixel Data is \d+ bytes but .* requires 198"):
            transcode(data[:-20])

    def test_missing_sop_instance_uid(self) -> None:
        ds = make_dataset()
        del ds.SOPInstanceUID
        with pytest.raises(InvalidDicom, match=r"no SOPInstanceUID \(0008,0018\)$"):
            transcode(to_bytes(ds))


class TestBombs:
    def test_declared_size_over_the_cap_is_refused_fast_without_allocating(self) -> None:
        ds = make_dataset(rows=4, columns=4)
        ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000
        data = to_bytes(ds)
        tracemalloc.start()
        start = time.perf_counter()
        with pytest.raises(ImageTooLarge, match="4,294,836,225,000 pixels"):
            transcode(data)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < 0.5
        assert peak < 5_000_000

    def test_configured_cap(self) -> None:
        with pytest.raises(ImageTooLarge, match="more than the limit of 50"):
            transcode(_ct(), TranscodeOptions(max_pixels=50))

    def test_dimensions_disagreeing_with_native_length(self) -> None:
        ds = make_dataset(rows=4, columns=4)
        ds.Rows = 4000  # 4000×4 16-bit needs 32,000 bytes; the file has 32
        with pytest.raises(InvalidDicom, match=r"Pixel Data is 32 bytes .* requires 32,000"):
            transcode(to_bytes(ds))

    def test_bomb_in_a_pass_through_syntax_is_refused_too(self) -> None:
        ds = make_dataset(rows=4, columns=4)
        ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 10
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"
        ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xd9"])
        with pytest.raises(ImageTooLarge):
            transcode(to_bytes(ds))


class TestPaths:
    def test_forced_fallback_writes_jpeg2000_lossless_at_bits_stored(self) -> None:
        for kw in (
            {"signed": True, "bits_stored": 12},
            {"samples": 3, "bits_allocated": 8, "bits_stored": 8, "photometric": "RGB"},
            {"bits_stored": 16},
        ):
            data = to_bytes(make_dataset(rows=7, columns=5, frames=2, **kw))  # type: ignore[arg-type]
            result = transcode(data, TranscodeOptions(force_fallback=True))
            assert result.converted and result.verified
            assert result.transfer_syntax == JPEG2000_LOSSLESS
            assert read(result.data).file_meta.TransferSyntaxUID == JPEG2000_LOSSLESS
            assert np.array_equal(independent_pixels(result.data), source_pixels(data))
            fragments, _ = frames_of(result.data)
            info = parse_codestream(fragments[0])
            assert info.precision == read(data).BitsStored

    def test_one_pixel_fallback(self) -> None:
        data = _ct() if False else to_bytes(make_dataset(rows=1, columns=1))
        result = transcode(data, TranscodeOptions(target="jpeg2000"))
        assert result.transfer_syntax == JPEG2000_LOSSLESS and result.verified
        assert np.array_equal(independent_pixels(result.data), source_pixels(data))

    def test_planar_configuration_1_source(self) -> None:
        ds = make_dataset(
            rows=7, columns=5, samples=3, bits_allocated=8, bits_stored=8, photometric="RGB"
        )
        pixels = ds.pixel_array.copy()
        ds.PlanarConfiguration = 1
        ds.PixelData = np.ascontiguousarray(pixels.transpose(2, 0, 1)).tobytes()
        data = to_bytes(ds)
        result = transcode(data)
        out = read(result.data)
        assert result.converted and out.PlanarConfiguration == 0
        assert out.PhotometricInterpretation == "YBR_RCT"
        assert np.array_equal(independent_pixels(result.data), pixels)

    def test_palette_colour_keeps_indices_and_luts(self, pydicom_data_dir: Path) -> None:
        data = (pydicom_data_dir / "OT-PAL-8-face.dcm").read_bytes()
        result = transcode(data)
        out = read(result.data)
        assert result.converted and out.PhotometricInterpretation == "PALETTE COLOR"
        assert out.RedPaletteColorLookupTableData == read(data).RedPaletteColorLookupTableData
        assert np.array_equal(independent_pixels(result.data), source_pixels(data))

    def test_high_bits_carrying_data_are_not_dropped(self) -> None:
        ds = make_dataset(rows=4, columns=4, bits_stored=12)
        raw = np.frombuffer(ds.PixelData, "<u2").copy()
        raw[3] |= 0x8000  # e.g. a retired embedded overlay bit
        ds.PixelData = raw.tobytes()
        data = to_bytes(ds)
        result = transcode(data)
        assert not result.converted and result.reason == "unused_bits_set"
        assert result.data is data

    def test_signed_values_stored_without_sign_extension(self) -> None:
        ds = make_dataset(rows=4, columns=4, bits_stored=12, signed=True)
        raw = np.frombuffer(ds.PixelData, "<u2") & 0x0FFF  # high bits zero, as some writers do
        ds.PixelData = raw.astype("<u2").tobytes()
        data = to_bytes(ds)
        result = transcode(data)
        assert result.converted
        assert np.array_equal(independent_pixels(result.data), source_pixels(data))
        assert source_pixels(data).min() < 0

    def test_already_htj2k_and_no_pixels_pass_through_unchanged(self) -> None:
        once = transcode(_ct()).data
        again = transcode(once)
        assert (again.converted, again.reason, again.data) == (False, "already_htj2k", once)
        assert again.frame_crc32 == frame_crc32s(once)
        ds = make_dataset()
        del ds.PixelData
        data = to_bytes(ds)
        result = transcode(data)
        assert (result.reason, result.frames, result.frame_crc32) == ("no_pixel_data", 0, ())


class TestLossy:
    def test_lossy_mode_flags_and_new_uid(self) -> None:
        data = to_bytes(
            make_dataset(
                rows=64, columns=64, bits_stored=12, ImageType=["ORIGINAL", "PRIMARY", "AXIAL"]
            )
        )
        result = transcode(data, TranscodeOptions(lossy_quality=90))
        out, src = read(result.data), read(data)
        assert result.converted and not result.verified
        assert result.transfer_syntax == HTJ2K == out.file_meta.TransferSyntaxUID
        assert out.SOPInstanceUID != src.SOPInstanceUID == read(data).SOPInstanceUID
        assert result.sop_instance_uid == out.SOPInstanceUID
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
        assert out.LossyImageCompression == "01"
        assert float(out.LossyImageCompressionRatio) > 1
        assert out.LossyImageCompressionMethod == "ISO_15444_15"
        assert list(out.ImageType) == ["DERIVED", "PRIMARY", "AXIAL"]
        diff = independent_pixels(result.data).astype(int) - source_pixels(data).astype(int)
        assert np.abs(diff).max() < 100  # close, not equal
        # New, but the same on every attempt: a retried lossy upload is stored once.
        again = transcode(data, TranscodeOptions(lossy_quality=90))
        assert again.sop_instance_uid == result.sop_instance_uid
        other = transcode(data, TranscodeOptions(lossy_quality=80))
        assert other.sop_instance_uid not in (result.sop_instance_uid, src.SOPInstanceUID)
        assert result.sop_instance_uid.startswith("2.25.")
        changed = {
            "SOPInstanceUID",
            "LossyImageCompression",
            "LossyImageCompressionRatio",
            "LossyImageCompressionMethod",
            "ImageType",
        }
        assert_same_except_allowed(src, out, extra=changed)

    def test_lossy_sources_are_never_reflagged(self, corpus_dir: Path) -> None:
        data = (corpus_dir / "JPEG-lossy.dcm").read_bytes()
        result = transcode(data, TranscodeOptions(lossy_quality=50))
        assert (result.converted, result.reason, result.data) == (False, "lossy_source", data)

    def test_lossless_conversion_keeps_an_earlier_lossy_history(self) -> None:
        data = to_bytes(
            make_dataset(
                rows=7,
                columns=5,
                LossyImageCompression="01",
                LossyImageCompressionRatio=["8"],
                LossyImageCompressionMethod=["ISO_10918_1"],
            )
        )
        result = transcode(data)
        out = read(result.data)
        assert result.converted and result.verified
        assert out.LossyImageCompression == "01"
        assert (out.LossyImageCompressionRatio, out.LossyImageCompressionMethod) == (
            8,
            "ISO_10918_1",
        )
        assert_same_except_allowed(read(data), out)


class TestTranscodeDataset:
    def test_pass_through_is_freshly_serialized_with_zero_preamble(self) -> None:
        ds = make_dataset()
        del ds.PixelData
        data = to_bytes(ds)
        edited = pydicom.dcmread(BytesIO(data))
        edited.preamble = b"MZ" + b"\x90" * 126
        edited.PatientName = "Stamped^Name"
        result = transcode_dataset(edited, TranscodeOptions(), original_size=len(data))
        assert result.reason == "no_pixel_data" and result.original_size == len(data)
        assert result.data[:128] == b"\x00" * 128
        assert read(result.data).PatientName == "Stamped^Name"

    def test_converted_leaves_the_callers_dataset_untouched(self) -> None:
        data = _ct()
        ds = pydicom.dcmread(BytesIO(data))
        before = ds.PixelData
        result = transcode_dataset(ds, TranscodeOptions(), original_size=len(data))
        assert result.converted and result.transfer_syntax == HTJ2K_LOSSLESS
        assert ds.PixelData == before and ds.file_meta.TransferSyntaxUID != HTJ2K_LOSSLESS
        assert np.array_equal(independent_pixels(result.data), source_pixels(data))


async def test_runs_in_the_worker_pool() -> None:
    pool = WorkerPool(1)
    try:
        data = _ct(frames=2)
        result = await pool.run(transcode, data, TranscodeOptions())
    finally:
        pool.close()
    assert result.converted and result.frames == 2
    assert np.array_equal(independent_pixels(result.data), source_pixels(data))
