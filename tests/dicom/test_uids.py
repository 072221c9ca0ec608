"""UIDs (PS3.5 §9.1): what counts as one, and derived UIDs."""

from __future__ import annotations

import uuid

import pytest

from dicomgate.dicom.uids import derived_uid, is_uid


@pytest.mark.parametrize(
    "value",
    [
        "1.2.840.10008.1.2.4.201",
        "2.25.229437963346155452542036577102587404231",
        "1",
        "1.2.840.0123.4",  # a leading zero: not conformant, tolerated (real scanners write it)
        "1" * 64,
    ],
)
def test_valid_uid(value: str) -> None:
    assert is_uid(value)


@pytest.mark.parametrize(
    "value",
    ["", "abc", "1..2", "1.2.", ".1.2", "1.2.3 ", "1,2,3", "1.2.x", "1" * 65, "١.٢"],
    ids=["empty", "letters", "empty-component", "trailing-dot", "leading-dot", "space",
         "commas", "letter-component", "65-chars", "non-ascii-digits"],
)  # fmt: skip
def test_invalid_uid(value: str) -> None:
    assert not is_uid(value)


def test_derived_uid_is_a_stable_uid_of_its_parts() -> None:
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, "urn:test")
    uid = derived_uid(namespace, "a", "b")
    assert is_uid(uid) and uid.startswith("2.25.") and len(uid) <= 44
    assert derived_uid(namespace, "a", "b") == uid
    assert derived_uid(namespace, "a,b") != uid  # the parts are kept apart
