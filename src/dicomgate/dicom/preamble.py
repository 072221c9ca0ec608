"""PS3.10 §7.1 preamble and prefix: 128 bytes of free content (which can carry an executable:
dicomgate zeroes it), then the four bytes ``DICM``."""

from __future__ import annotations

from pydicom.dataset import Dataset

PREAMBLE_LENGTH = 128
ZERO_PREAMBLE = b"\x00" * PREAMBLE_LENGTH
PART10_PREFIX = b"DICM"


def zero_preamble(ds: Dataset) -> None:
    """Replace the 128-byte preamble with zeros (a polyglot file can hide a program there)."""
    ds.preamble = ZERO_PREAMBLE


def preamble_is_zero(data: bytes) -> bool:
    """True when a Part 10 file's first 128 bytes are all zero."""
    return data[:PREAMBLE_LENGTH] == ZERO_PREAMBLE


def looks_like_part10(data: bytes) -> bool:
    """True when the bytes carry the ``DICM`` prefix after the preamble."""
    return data[PREAMBLE_LENGTH : PREAMBLE_LENGTH + len(PART10_PREFIX)] == PART10_PREFIX
