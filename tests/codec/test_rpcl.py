"""HTJ2K Lossless RPCL (…4.202): real output meets PS3.5 §10.18, and the label is only written
when it does (a codestream that does not is labelled …4.201, still verified bit-exact).

The codestreams are read with the tests' own marker parser (``tests.codec.helpers``), not the
transcoder's, and the pixels decoded with pylibjpeg, not imagecodecs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from dicomgate.codec import htj2k
from dicomgate.codec.capabilities import HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL
from dicomgate.codec.plan import EncodePlan
from dicomgate.codec.rpcl import read_main_header, rpcl_problems
from dicomgate.codec.transcode import TranscodeOptions, transcode
from tests.builders import make_dataset, to_bytes
from tests.codec.helpers import frames_of, independent_pixels, parse_codestream, read, source_pixels

RPCL_TARGET = TranscodeOptions(target="htj2k-rpcl")


def _image(rows: int, columns: int, *, samples: int = 1, frames: int = 1) -> bytes:
    rng = np.random.default_rng(rows * columns)
    shape = (frames, rows, columns, samples)
    if samples == 1:
        pixels = rng.integers(0, 4096, size=shape[:3], dtype=np.uint16)
        ds = make_dataset(rows=rows, columns=columns, frames=frames, pixels=pixels.squeeze())
    else:
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        ds = make_dataset(
            rows=rows,
            columns=columns,
            frames=frames,
            samples=3,
            bits_allocated=8,
            bits_stored=8,
            photometric="RGB",
            pixels=pixels.squeeze(),
        )
    return to_bytes(ds)


def test_the_tile_part_division_is_imagecodecs_resolutions() -> None:
    assert htj2k.TILE_PART_PER_RESOLUTION == imagecodecs.HTJ2K.TILEPART.RESOLUTIONS


@pytest.mark.parametrize(
    ("rows", "columns", "samples", "frames", "levels"),
    [
        (512, 512, 1, 1, 5),  # 512 → 16 at 5 levels (dicomgate writes at least 5)
        (3000, 2000, 1, 1, 6),  # 3000 → 47 at 6: one more level than the default 5
        (600, 4100, 1, 2, 7),  # the longer side decides: 4100 → 33
        (300, 200, 3, 1, 5),  # colour, reversible colour transform
    ],
    ids=["512-square", "3000x2000", "wide-2-frames", "rgb"],
)
def test_real_output_meets_the_rules(
    rows: int, columns: int, samples: int, frames: int, levels: int
) -> None:
    data = _image(rows, columns, samples=samples, frames=frames)
    result = transcode(data, RPCL_TARGET)
    assert result.converted and result.verified
    assert result.transfer_syntax == HTJ2K_LOSSLESS_RPCL
    assert read(result.data).file_meta.TransferSyntaxUID == HTJ2K_LOSSLESS_RPCL
    fragments, _ = frames_of(result.data)
    assert len(fragments) == frames
    for fragment in fragments:
        info = parse_codestream(fragment)
        assert info.progression == 2  # COD SGcod: RPCL (ISO/IEC 15444-1 Table A.16)
        assert info.has_tlm  # TLM in the main header
        assert info.levels == levels
        assert -(-max(rows, columns) // 2**levels) <= 64  # lowest resolution ≤ 64
        assert info.tile_parts == levels + 1  # one tile-part per resolution
        assert rpcl_problems(fragment) == []  # the transcoder's own reading agrees
    assert np.array_equal(independent_pixels(result.data), source_pixels(data))


def test_a_real_corpus_image(corpus_dir: Path) -> None:
    data = (corpus_dir / "CT_small.dcm").read_bytes()
    result = transcode(data, RPCL_TARGET)
    assert result.transfer_syntax == HTJ2K_LOSSLESS_RPCL
    (fragment,), _ = frames_of(result.data)
    header = read_main_header(fragment)
    assert (header.width, header.height, header.progression) == (128, 128, 2)
    assert header.levels == parse_codestream(fragment).levels == 5
    assert np.array_equal(independent_pixels(result.data), source_pixels(data))


# --- Codestreams that miss a rule: still lossless HTJ2K, labelled …4.201 -----------------------
def _cod_at(stream: bytes) -> int:
    return stream.index(b"\xff\x52")


def _lrcp(stream: bytes) -> bytes:
    """The same codestream declaring LRCP: for one component, one layer and one precinct per
    resolution, LRCP orders the packets exactly as RPCL does, so it decodes to the same pixels."""
    buf = bytearray(stream)
    buf[_cod_at(stream) + 5] = 0
    return bytes(buf)


def _without_tlm(stream: bytes) -> bytes:
    at = stream.index(b"\xff\x55")
    length = int.from_bytes(stream[at + 2 : at + 4], "big")
    return stream[:at] + stream[at + 2 + length :]


def _too_few_levels(frame: np.ndarray, plan: EncodePlan) -> bytes:
    return REAL_ENCODE(frame, replace(plan, levels=2))


REAL_ENCODE = htj2k.encode_frame


@pytest.mark.parametrize(
    ("encode", "problem"),
    [
        (lambda f, p: _lrcp(REAL_ENCODE(f, p)), "progression order 0, not RPCL (2)"),
        (lambda f, p: _without_tlm(REAL_ENCODE(f, p)), "no TLM marker"),
        (
            _too_few_levels,
            "2 decomposition levels leave a 128×128 lowest resolution (at most 64)",
        ),
    ],
    ids=["lrcp", "no-tlm", "two-levels"],
)
def test_a_codestream_missing_a_rule_is_labelled_4_201(
    encode: object,
    problem: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = _image(512, 512)
    monkeypatch.setattr(htj2k, "encode_frame", encode)
    with caplog.at_level(logging.WARNING, logger="dicomgate.codec.rpcl"):
        result = transcode(data, RPCL_TARGET)
    assert result.converted and result.verified
    assert result.transfer_syntax == HTJ2K_LOSSLESS
    assert read(result.data).file_meta.TransferSyntaxUID == HTJ2K_LOSSLESS
    (fragment,), _ = frames_of(result.data)
    assert problem in rpcl_problems(fragment)
    assert [r.getMessage() for r in caplog.records] == [
        f"HTJ2K frame 1 does not meet the RPCL rules (PS3.5 §10.18): {problem}; labelled "
        f"{HTJ2K_LOSSLESS} instead of {HTJ2K_LOSSLESS_RPCL}"
    ]
    assert np.array_equal(independent_pixels(result.data), source_pixels(data))


def test_the_default_target_is_not_checked_against_the_rpcl_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(htj2k, "encode_frame", lambda f, p: _without_tlm(REAL_ENCODE(f, p)))
    result = transcode(_image(64, 64))
    assert result.transfer_syntax == HTJ2K_LOSSLESS  # …4.201 asks nothing of the layout


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        (
            b"\xff\x4f\xff\x51\x00\x29",
            "its main header cannot be read: marker FF51 has a bad length",
        ),
        (b"\x00\x00", "its main header cannot be read: no SOC marker"),
        (b"\xff\x4f\xff\x90", "its main header cannot be read: no SIZ or COD marker segment"),
    ],
    ids=["cut-short", "no-soc", "no-siz"],
)
def test_an_unreadable_header_is_a_problem(stream: bytes, problem: str) -> None:
    assert rpcl_problems(stream) == [problem]
