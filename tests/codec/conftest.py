"""Codec test fixtures: OHIF's HTJ2K decoder, one Node process for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.codec.openjph import OpenJPH


@pytest.fixture(scope="session")
def openjph() -> Iterator[OpenJPH]:
    """``@cornerstonejs/codec-openjph`` in Node; missing tooling fails the tests, never skips."""
    try:
        decoder = OpenJPH()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield decoder
    decoder.close()
