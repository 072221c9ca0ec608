"""Memory of a transcode: frame by frame, no second copy of the file, same fallbacks as before.

``transcode_dataset`` encodes and verifies one frame at a time (only the codestreams accumulate)
and copies the caller's dataset without pydicom's read buffer. These tests pin that, and that a
failure on a *later* frame still falls back to the untouched original.
"""

from __future__ import annotations

import tracemalloc
from io import BytesIO

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import RLELossless

from dicomgate.codec import pixels as pixels_module
from dicomgate.codec import transcode as transcode_module
from dicomgate.codec.capabilities import HTJ2K_LOSSLESS
from dicomgate.codec.transcode import TranscodeOptions, transcode, transcode_dataset
from tests.builders import make_dataset, to_bytes
from tests.codec.helpers import independent_pixels, read, source_pixels

EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _smooth_multiframe(frames: int = 32, size: int = 256) -> bytes:
    """A compressible 16-bit multi-frame image (4 MiB of pixels at the defaults)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:size, 0:size]
    base = (xx * 4 + yy * 3).astype(np.int64)
    pixels = np.stack([base + i + rng.integers(0, 4, size=base.shape) for i in range(frames)])
    # Bits Stored = Bits Allocated: the unused-bits check has nothing to do (measured apart).
    return to_bytes(
        make_dataset(rows=size, columns=size, frames=frames, pixels=pixels, bits_stored=16)
    )


def test_peak_memory_is_below_the_pixel_data_size() -> None:
    """Before: a deep copy of the read buffer (1×) plus every decoded frame (1×) → 2.6×."""
    data = _smooth_multiframe()
    ds = pydicom.dcmread(BytesIO(data))  # keeps its read buffer, as any caller's dataset may
    pixel_bytes = len(ds.PixelData)
    tracemalloc.start()
    try:
        result = transcode_dataset(ds, TranscodeOptions(), original_size=len(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.converted and result.verified and result.frames == 32
    assert peak < 1.2 * pixel_bytes, f"peak {peak / pixel_bytes:.2f}× the pixel data"
    assert np.array_equal(independent_pixels(result.data), source_pixels(data))


def test_verification_failure_on_a_late_frame_keeps_the_original(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Frames 1–2 encode and verify; frame 3 decodes differently → the original, unchanged."""
    data = to_bytes(make_dataset(rows=16, columns=16, frames=3))
    real_decode = transcode_module._decode_frame
    calls: list[int] = []

    def flip_third(stream: bytes, plan: object) -> np.ndarray:
        decoded = real_decode(stream, plan)  # type: ignore[arg-type]
        calls.append(1)
        if len(calls) == 3:
            decoded = decoded.copy()
            decoded[0, 0] ^= 1
        return decoded

    monkeypatch.setattr(transcode_module, "_decode_frame", flip_third)
    result = transcode(data)
    assert (result.converted, result.reason, len(calls)) == (False, "verification_failed", 3)
    assert result.data is data

    calls.clear()
    ds = pydicom.dcmread(BytesIO(data))
    before = ds.PixelData
    result = transcode_dataset(ds, TranscodeOptions(), original_size=len(data))
    assert (result.converted, result.reason) == (False, "verification_failed")
    assert ds.PixelData is before and ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
    out = read(result.data)
    assert out.file_meta.TransferSyntaxUID == EXPLICIT_LE and out.PixelData == before


def test_source_frame_that_cannot_be_decoded_late_is_codec_refused() -> None:
    """An RLE source whose third frame is corrupt: frames 1–2 were encoded, still refused."""
    ds = make_dataset(rows=16, columns=16, frames=3)
    ds.compress(RLELossless)
    frames = list(generate_frames(ds.PixelData, number_of_frames=3))
    corrupt = bytearray(frames[2])
    corrupt[0] = 3  # RLE header: 3 segments where 16-bit monochrome has 2
    ds.PixelData = encapsulate([frames[0], frames[1], bytes(corrupt)], has_bot=True)
    data = to_bytes(ds)
    result = transcode(data)
    assert (result.converted, result.reason, result.data) == (False, "codec_refused", data)
    edited = pydicom.dcmread(BytesIO(data))
    result = transcode_dataset(edited, TranscodeOptions(), original_size=len(data))
    assert (result.converted, result.reason) == (False, "codec_refused")
    assert read(result.data).PixelData == ds.PixelData


class TestUnusedBitsInSlices:
    """The unused-bits check runs over slices of the samples: a bad sample in any slice counts."""

    @pytest.fixture(autouse=True)
    def tiny_slices(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(pixels_module, "UNUSED_BITS_SLICE", 5)

    @pytest.mark.parametrize("signed", [False, True])
    def test_bad_bit_in_the_last_slice(self, signed: bool) -> None:
        ds = make_dataset(rows=4, columns=4, frames=3, bits_stored=12, signed=signed)
        raw = np.frombuffer(ds.PixelData, "<u2").copy()
        if signed:  # a non-negative last value, so 0x8000 is not a sign extension
            assert raw[-1] & 0x0800 == 0
        raw[-1] |= 0x8000
        ds.PixelData = raw.tobytes()
        data = to_bytes(ds)
        result = transcode(data)
        assert (result.converted, result.reason, result.data) == (False, "unused_bits_set", data)

    def test_sign_extension_in_every_slice_is_converted(self) -> None:
        data = to_bytes(make_dataset(rows=4, columns=4, frames=3, bits_stored=12, signed=True))
        assert source_pixels(data).min() < 0
        result = transcode(data)
        assert result.converted and result.transfer_syntax == HTJ2K_LOSSLESS
        assert np.array_equal(independent_pixels(result.data), source_pixels(data))


def test_dataset_with_deferred_elements_is_still_copied_whole() -> None:
    """A dataset read with ``defer_size`` needs its buffer: the copy keeps it and converts."""
    comments = "long comment " * 100
    data = to_bytes(make_dataset(rows=64, columns=64, frames=2, ImageComments=comments))
    ds = pydicom.dcmread(BytesIO(data), defer_size=1024)
    image_comments = 0x00204000
    assert ds.get_item(image_comments, keep_deferred=True).value is None  # read on access
    result = transcode_dataset(ds, TranscodeOptions(), original_size=len(data))
    assert result.converted and result.verified
    assert read(result.data).ImageComments == comments.strip()
    assert np.array_equal(independent_pixels(result.data), source_pixels(data))
