"""Generated matrix: every supported pixel layout is transcoded bit-exact (independent decoder)."""

from __future__ import annotations

import itertools
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from dicomgate.codec.capabilities import HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL
from dicomgate.codec.transcode import TranscodeOptions, frame_crc32s, transcode
from dicomgate.dicom.part10 import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from tests.builders import make_dataset, to_bytes
from tests.codec.helpers import (
    assert_same_except_allowed,
    frames_of,
    independent_pixels,
    parse_codestream,
    read,
    source_pixels,
)

SMALL_SIZES = [(1, 1), (7, 5)]
LAYOUTS = [
    (allocated, stored, signed, samples, frames)
    for allocated, stored, signed, samples, frames in itertools.product(
        (8, 16), (8, 10, 12, 16), (False, True), (1, 3), (1, 3)
    )
    if stored <= allocated
]
CASES = [(*layout, rows, cols) for layout in LAYOUTS for rows, cols in SMALL_SIZES]
# A few big odd sizes: several wavelet levels, many code-blocks (kept few: the machine is small).
CASES += [
    (16, 12, False, 1, 1, 513, 511),
    (16, 16, True, 1, 3, 513, 511),
    (8, 8, False, 3, 1, 513, 511),
    (16, 10, True, 3, 1, 513, 511),
]


def _source(
    allocated: int, stored: int, signed: bool, samples: int, frames: int, rows: int, cols: int
) -> bytes:
    photometric = "RGB" if samples == 3 else "MONOCHROME2"
    rng = np.random.default_rng(rows * cols + stored)
    lo, hi = (-(2 ** (stored - 1)), 2 ** (stored - 1)) if signed else (0, 2**stored)
    shape = (frames, rows, cols, samples)
    pixels = rng.integers(lo, hi, size=shape, dtype=np.int64)
    pixels.flat[0], pixels.flat[-1] = lo, hi - 1  # the extremes of the stored range
    pixels = pixels[..., 0] if samples == 1 else pixels
    pixels = pixels[0] if frames == 1 else pixels
    ds = make_dataset(
        rows=rows,
        columns=cols,
        frames=frames,
        samples=samples,
        bits_allocated=allocated,
        bits_stored=stored,
        signed=signed,
        photometric=photometric,
        pixels=pixels,
    )
    return to_bytes(ds)


@pytest.mark.parametrize(
    ("allocated", "stored", "signed", "samples", "frames", "rows", "cols"),
    CASES,
    ids=[f"ba{a}-bs{b}-{'s' if s else 'u'}-spp{p}-f{f}-{r}x{c}" for a, b, s, p, f, r, c in CASES],
)
def test_lossless_rpcl_is_bit_exact(
    allocated: int, stored: int, signed: bool, samples: int, frames: int, rows: int, cols: int
) -> None:
    data = _source(allocated, stored, signed, samples, frames, rows, cols)
    result = transcode(data, TranscodeOptions(target="htj2k-rpcl"))

    assert result.converted and result.verified and result.reason is None
    assert result.transfer_syntax == HTJ2K_LOSSLESS_RPCL
    assert result.frames == frames
    original = source_pixels(data)
    assert np.array_equal(independent_pixels(result.data), original)
    # CRC32 of each source frame, as the service and batch conversion use them.
    per_frame = [original] if frames == 1 else list(original)
    assert result.frame_crc32 == tuple(zlib.crc32(f.tobytes()) for f in per_frame)
    assert frame_crc32s(result.data) == result.frame_crc32

    out = read(result.data)
    assert result.data[:128] == b"\x00" * 128
    assert out.file_meta.TransferSyntaxUID == HTJ2K_LOSSLESS_RPCL
    assert out.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert out.file_meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert out["PixelData"].VR == "OB"
    assert out.SOPInstanceUID == read(data).SOPInstanceUID == result.sop_instance_uid
    if samples == 3:
        assert out.PhotometricInterpretation == "YBR_RCT"  # PS3.5 §8.2.14
        assert out.PlanarConfiguration == 0
    else:
        assert out.PhotometricInterpretation == "MONOCHROME2"
    assert_same_except_allowed(read(data), out)

    fragments, offsets = frames_of(result.data)
    assert len(fragments) == frames and len(offsets) == frames  # one fragment per frame + BOT
    for fragment in fragments:
        info = parse_codestream(fragment)
        assert info.progression == 2  # RPCL
        assert info.has_tlm
        assert (max(rows, cols) + 2**info.levels - 1) // 2**info.levels <= 64
        assert info.tile_parts == info.levels + 1  # one tile-part per resolution
        assert info.precision == stored and info.signed == signed  # J2K precision = Bits Stored
        assert info.mct == (1 if samples == 3 else 0)
        assert (info.width, info.height) == (cols, rows)


def test_default_target_is_labelled_4_201() -> None:
    data = _source(16, 12, False, 1, 1, 7, 5)
    result = transcode(data)
    assert result.transfer_syntax == HTJ2K_LOSSLESS
    assert read(result.data).file_meta.TransferSyntaxUID == HTJ2K_LOSSLESS
    assert np.array_equal(independent_pixels(result.data), source_pixels(data))


def test_openjph_reference_decoder_reads_the_codestream(tmp_path: Path) -> None:
    """ojph_expand (OpenJPH's own tool) decodes our re-labelled 12-bit codestream exactly."""
    data = _source(16, 12, False, 1, 1, 64, 64)
    fragments, _ = frames_of(transcode(data).data)
    stream = tmp_path / "frame.j2c"
    stream.write_bytes(fragments[0])
    pgm = tmp_path / "frame.pgm"
    subprocess.run(
        ["ojph_expand", "-i", str(stream), "-o", str(pgm)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    raw = pgm.read_bytes()
    header_end = 0
    for _ in range(4):  # P5, width, height, maxval: four whitespace-separated tokens
        while raw[header_end : header_end + 1].isspace():
            header_end += 1
        while not raw[header_end : header_end + 1].isspace():
            header_end += 1
    pixels = np.frombuffer(raw[header_end + 1 :], dtype=">u2").reshape(64, 64)
    assert np.array_equal(pixels, source_pixels(data))
