"""PS3.10 §7.1 preamble: 128 bytes of free content that can carry an executable; zero it."""

from __future__ import annotations

from pydicom.dataset import FileDataset

ZERO_PREAMBLE = b"\x00" * 128


def zero_preamble(ds: FileDataset) -> None:
    """Replace the 128-byte preamble with zeros (a polyglot file can hide a program there)."""
    ds.preamble = ZERO_PREAMBLE


def preamble_is_zero(data: bytes) -> bool:
    """True when a Part 10 file's first 128 bytes are all zero."""
    return data[:128] == ZERO_PREAMBLE
