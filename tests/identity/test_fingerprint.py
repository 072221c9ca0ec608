"""What "the same instance" means (dicom/fingerprint.py), without a server: the fingerprint of
a file equals the one of every lossless re-encoding of it, and changes with anything dicomgate
does not write itself."""

from __future__ import annotations

import copy
import datetime

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, RLELossless

from dicomgate.codec.transcode import TranscodeOptions, frame_crc32s, read_dataset, transcode
from dicomgate.dicom.fingerprint import content_fingerprint, differences
from dicomgate.dicom.stamp import coerce_attributes
from tests.builders import make_dataset, to_bytes


def fingerprint(data: bytes) -> str:
    """As the identity guard computes it for a stored file."""
    return content_fingerprint(read_dataset(data), frame_crc32s(data))


def rle(ds: Dataset) -> bytes:
    encoded = copy.deepcopy(ds)
    encoded.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    return to_bytes(encoded)


SAME = {"sop_uid": "1.2.3.4.5", "study_uid": "1.2.3.4", "series_uid": "1.2.3.4.1"}
GREY = {"rows": 16, "columns": 16, "frames": 2}
RGB = {"rows": 16, "columns": 16, "samples": 3, "bits_allocated": 8, "bits_stored": 8}


@pytest.mark.parametrize("kind", [GREY, RGB], ids=["grey-2-frames", "rgb"])
def test_every_lossless_encoding_of_an_instance_has_its_fingerprint(kind: dict[str, int]) -> None:
    source = make_dataset(**kind, **SAME)
    plain = to_bytes(source)
    htj2k = transcode(plain, TranscodeOptions())
    assert htj2k.converted and htj2k.verified
    expected = fingerprint(plain)
    assert fingerprint(htj2k.data) == expected
    # The transcoder's own CRCs of the source pixels give the same fingerprint (no decode).
    assert content_fingerprint(read_dataset(htj2k.data), htj2k.frame_crc32) == expected
    assert fingerprint(rle(source)) == expected
    if kind is RGB:
        # HTJ2K with the reversible colour transform says YBR_RCT: still the same RGB pixels.
        assert read_dataset(htj2k.data).PhotometricInterpretation == "YBR_RCT"
        planar = make_dataset(**kind, **SAME, PlanarConfiguration=1)
        by_plane = np.moveaxis(source.pixel_array, -1, 0)
        planar.PixelData = np.ascontiguousarray(by_plane).tobytes()
        assert fingerprint(to_bytes(planar)) == expected
    else:
        big = to_bytes(make_dataset(**kind, **SAME, transfer_syntax=ExplicitVRBigEndian))
        assert fingerprint(big) == expected


def test_one_changed_pixel_changes_the_pixel_part_only() -> None:
    source = make_dataset(rows=16, columns=16, **SAME)
    changed = make_dataset(rows=16, columns=16, **SAME)
    pixels = changed.pixel_array.copy()
    pixels[3, 4] ^= 1
    changed.PixelData = pixels.astype("<u2").tobytes()
    assert differences(fingerprint(to_bytes(source)), fingerprint(to_bytes(changed))) == [
        "pixel data"
    ]


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("InstanceNumber", 2),
        ("StudyInstanceUID", "1.2.3.999"),
        ("PatientID", "SOMEONE-ELSE"),
        ("BodyPartExamined", "HEAD"),
        ("PhotometricInterpretation", "MONOCHROME1"),
    ],
)
def test_an_attribute_dicomgate_does_not_write_is_compared(keyword: str, value: object) -> None:
    source = make_dataset(rows=8, columns=8, sop_uid="1.2.3.4.7")
    changed = copy.deepcopy(source)
    setattr(changed, keyword, value)
    assert differences(fingerprint(to_bytes(source)), fingerprint(to_bytes(changed))) == [
        "attributes"
    ]


def test_what_dicomgate_stamps_is_not_compared() -> None:
    """A re-upload stamped with updated demographics or a new upload date is the same instance."""
    source = make_dataset(rows=8, columns=8, sop_uid="1.2.3.4.8")
    first, again = copy.deepcopy(source), copy.deepcopy(source)
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    coerce_attributes(first, {"PatientName": "Doe^Jane", "PatientSex": "F"}, now=when)
    coerce_attributes(
        again,
        {"PatientName": "Doe-Smith^Jane", "PatientSex": "F", "StudyDescription": "Chest"},
        now=when + datetime.timedelta(days=1),
    )
    assert fingerprint(to_bytes(first)) == fingerprint(to_bytes(again))
