"""The PS3.10 §7.1 preamble and ``DICM`` prefix."""

from __future__ import annotations

import pytest

from dicomgate.dicom.preamble import (
    PART10_PREFIX,
    ZERO_PREAMBLE,
    looks_like_part10,
    preamble_is_zero,
)


@pytest.mark.parametrize(
    "data",
    [ZERO_PREAMBLE + PART10_PREFIX, b"MZ" + b"\x90" * 126 + b"DICM" + b"\x02\x00"],
    ids=["zero-preamble", "executable-preamble"],
)
def test_part10_prefix_found(data: bytes) -> None:
    assert looks_like_part10(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"DICM", ZERO_PREAMBLE + b"DICX", b"\x00" * 127 + b"DICM", b"\x02\x00\x00\x00UL"],
    ids=["empty", "prefix-only", "wrong-prefix", "short-preamble", "bare-dataset"],
)
def test_part10_prefix_missing(data: bytes) -> None:
    assert not looks_like_part10(data)


def test_preamble_is_zero() -> None:
    assert preamble_is_zero(ZERO_PREAMBLE + PART10_PREFIX)
    assert not preamble_is_zero(b"MZ" + ZERO_PREAMBLE[2:] + PART10_PREFIX)
