"""The Image Pixel module (PS3.3 §C.7.6.3): geometry, pixel budget, native Pixel Data length."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset

from dicomgate.dicom.image import (
    ImageGeometry,
    check_native_pixel_data,
    check_pixel_budget,
    expected_pixel_bytes,
)
from dicomgate.errors import ImageTooLarge, InvalidDicom
from tests.builders import make_dataset


def _header(**values: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in {
        "Rows": 4,
        "Columns": 5,
        "BitsAllocated": 16,
        "BitsStored": 12,
        **values,
    }.items():
        if value is not None:
            setattr(ds, keyword, value)
    return ds


class TestImageGeometry:
    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            ({}, ImageGeometry(4, 5, 1, 1, 16, 12, False)),
            ({"SamplesPerPixel": 3, "BitsStored": 8, "BitsAllocated": 8},
             ImageGeometry(4, 5, 3, 1, 8, 8, False)),
            ({"NumberOfFrames": 7, "PixelRepresentation": 1},
             ImageGeometry(4, 5, 1, 7, 16, 12, True)),
            ({"NumberOfFrames": "0"}, ImageGeometry(4, 5, 1, 1, 16, 12, False)),
            ({"BitsStored": None}, ImageGeometry(4, 5, 1, 1, 16, 16, False)),
            ({"BitsAllocated": 1, "BitsStored": 1}, ImageGeometry(4, 5, 1, 1, 1, 1, False)),
        ],
        ids=["defaults", "colour", "multi-frame-signed", "zero-frames-is-one",
             "bits-stored-defaults-to-allocated", "one-bit"],
    )  # fmt: skip
    def test_valid(self, values: dict[str, Any], expected: ImageGeometry) -> None:
        assert ImageGeometry.of(_header(**values)) == expected

    @pytest.mark.parametrize(
        ("values", "message"),
        [
            ({"Rows": None}, "The image has no Rows"),
            ({"BitsAllocated": None}, "The image has no BitsAllocated"),
            ({"Columns": 0}, "invalid dimensions: 4×0"),
            ({"SamplesPerPixel": 0}, "invalid dimensions: 4×5, 0 samples"),
            ({"BitsStored": 17}, "Bits Stored 17 does not fit Bits Allocated 16"),
            ({"BitsStored": 0}, "Bits Stored 0 does not fit"),
            ({"Rows": -3}, "invalid dimensions: -3×5"),
        ],
        ids=["no-rows", "no-bits-allocated", "zero-columns", "zero-samples",
             "stored-over-allocated", "zero-stored", "negative-rows"],
    )  # fmt: skip
    def test_invalid(self, values: dict[str, Any], message: str) -> None:
        with pytest.raises(InvalidDicom, match=message):
            ImageGeometry.of(_header(**values))


class TestPixelBudget:
    @pytest.mark.parametrize(
        ("rows", "columns", "samples", "frames"),
        [(10, 10, 1, 1), (10, 10, 3, 3), (1, 1, 1, 900)],
    )
    def test_within(self, rows: int, columns: int, samples: int, frames: int) -> None:
        check_pixel_budget(
            rows=rows, columns=columns, samples=samples, frames=frames, max_pixels=900
        )

    @pytest.mark.parametrize(
        ("rows", "columns", "samples", "frames", "total"),
        [(31, 31, 1, 1, "961"), (10, 10, 3, 4, "1,200"), (1, 1, 1, 901, "901")],
    )
    def test_over(self, rows: int, columns: int, samples: int, frames: int, total: str) -> None:
        declared = f"{rows}×{columns}×{samples}×{frames}"
        with pytest.raises(
            ImageTooLarge, match=rf"{declared} .* = {total} pixels, more than .* 900"
        ):
            check_pixel_budget(
                rows=rows, columns=columns, samples=samples, frames=frames, max_pixels=900
            )


class TestNativePixelData:
    @pytest.mark.parametrize(
        ("geometry", "photometric", "expected"),
        [
            (ImageGeometry(4, 5, 1, 1, 16, 12, False), "MONOCHROME2", 40),
            (ImageGeometry(4, 5, 3, 2, 8, 8, False), "RGB", 120),
            (ImageGeometry(4, 6, 3, 1, 8, 8, False), "YBR_FULL_422", 48),  # PS3.3 C.7.6.3.1.2
            (ImageGeometry(4, 6, 3, 1, 8, 8, False), "YBR_PARTIAL_422", 48),
            (ImageGeometry(4, 6, 3, 1, 8, 8, False), "YBR_PARTIAL_420", 36),
            (ImageGeometry(3, 3, 1, 1, 1, 1, False), "MONOCHROME2", 2),  # 9 bits, packed
            (ImageGeometry(3, 3, 1, 3, 1, 1, False), "MONOCHROME2", 4),  # 27 bits, packed
        ],
        ids=["16-bit", "rgb-2-frames", "ybr-full-422", "ybr-partial-422", "ybr-partial-420",
             "1-bit", "1-bit-frames-packed-together"],
    )  # fmt: skip
    def test_expected_length(
        self, geometry: ImageGeometry, photometric: str, expected: int
    ) -> None:
        assert expected_pixel_bytes(geometry, photometric) == expected

    @pytest.mark.parametrize(
        ("bits", "rows", "columns", "padding"),
        [(16, 4, 4, b""), (8, 3, 3, b"\0"), (8, 3, 3, b"")],
        ids=["exact", "odd-length-padded", "odd-length-unpadded"],
    )
    def test_whole(self, bits: int, rows: int, columns: int, padding: bytes) -> None:
        ds = make_dataset(rows=rows, columns=columns, bits_allocated=bits, bits_stored=bits)
        ds.PixelData += padding  # PS3.5 §8.1.1: one byte makes an odd length even
        check_native_pixel_data(ds, ImageGeometry.of(ds))

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (lambda d: d.PixelData[:-2], r"truncated: Pixel Data is 30 bytes .* requires 32"),
            (lambda d: d.PixelData + b"\0\0", r"^Pixel Data is 34 bytes .* requires 32$"),
            (lambda d: b"", r"truncated: Pixel Data is 0 bytes"),
        ],
        ids=["truncated", "too-long", "empty"],
    )
    def test_not_whole(self, change: Any, message: str) -> None:
        ds = make_dataset(rows=4, columns=4)
        ds.PixelData = change(ds)
        with pytest.raises(InvalidDicom, match=message):
            check_native_pixel_data(ds, ImageGeometry.of(ds))

    def test_one_bit_frames_padded_to_a_byte_each_are_kept(self) -> None:
        ds = make_dataset(rows=3, columns=3, frames=3, bits_allocated=8, bits_stored=8)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 0
        ds.PixelData = b"\x00" * 6  # 2 bytes per frame, as some writers store them
        check_native_pixel_data(ds, ImageGeometry.of(ds))
        ds.PixelData = b"\x00" * 3  # short of the 27 bits declared: cut off
        with pytest.raises(InvalidDicom, match="truncated"):
            check_native_pixel_data(ds, ImageGeometry.of(ds))
