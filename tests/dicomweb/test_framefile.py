"""``framefile.single_frame`` against pydicom: frame 1 of every single-frame file of the
differential corpus, cut out of the whole file, is byte for byte what pydicom reads (or the
cut declines, and the general path answers); a file it does not fully understand is declined."""

from __future__ import annotations

from io import BytesIO

import pydicom
import pytest
from pydicom.encaps import generate_frames
from pydicom.uid import JPEG2000Lossless

from dicomgate.codec.native import PixelFacts
from dicomgate.dicomweb.framefile import can_cut, file_syntax, single_frame
from tests.builders import make_dataset, to_bytes
from tests.corpora import differential_inputs


def facts_of(ds: pydicom.Dataset) -> PixelFacts:
    return PixelFacts(
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        samples_per_pixel=int(ds.get("SamplesPerPixel", 1)),
        bits_allocated=int(ds.BitsAllocated),
        bits_stored=int(ds.get("BitsStored", ds.BitsAllocated)),
        pixel_representation=int(ds.get("PixelRepresentation", 0)),
        photometric_interpretation=str(ds.get("PhotometricInterpretation", "")),
        planar_configuration=int(ds.get("PlanarConfiguration", 0)),
        number_of_frames=int(ds.get("NumberOfFrames", 1) or 1),
    )


def expected_frame(ds: pydicom.Dataset, facts: PixelFacts) -> bytes:
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return next(generate_frames(ds.PixelData, number_of_frames=1))
    size = facts.rows * facts.columns * facts.samples_per_pixel * facts.bits_allocated // 8
    return bytes(ds.PixelData[:size])


def single_frame_files() -> list[tuple[str, bytes, pydicom.Dataset]]:
    out = []
    for name, data in differential_inputs():
        try:
            ds = pydicom.dcmread(BytesIO(data))
            syntax = ds.file_meta.get("TransferSyntaxUID")
            if syntax is None or "PixelData" not in ds or "Rows" not in ds:
                continue
            if facts_of(ds).number_of_frames != 1 or not can_cut(str(syntax)):
                continue
        except Exception:  # not every corpus file is a valid Part 10 file
            continue
        out.append((name, data, ds))
    return out


def test_every_single_frame_file_is_cut_as_pydicom_reads_it_or_declined() -> None:
    cut, encapsulated = 0, 0
    files = single_frame_files()
    assert len(files) > 20
    for name, data, ds in files:
        syntax = str(ds.file_meta.TransferSyntaxUID)
        facts = facts_of(ds)
        try:
            expected = expected_frame(ds, facts)
        except Exception:  # pydicom cannot read it either: no claim either way
            continue
        frame = single_frame(data, syntax, facts)
        if frame is None:
            continue
        assert frame == expected, name
        cut += 1
        encapsulated += ds.file_meta.TransferSyntaxUID.is_encapsulated
    assert cut > 20 and encapsulated > 5  # the cut really serves most of the corpus


def test_a_label_the_file_does_not_carry_is_declined() -> None:
    ds = make_dataset(rows=8, columns=8)
    data = to_bytes(ds)
    facts = facts_of(ds)
    assert file_syntax(data) == "1.2.840.10008.1.2.1"
    assert single_frame(data, "1.2.840.10008.1.2.1", facts) == bytes(ds.PixelData)
    assert single_frame(data, str(JPEG2000Lossless), facts) is None


@pytest.mark.parametrize("cut_at", [0, 100, 131, 140, -1, -9])
def test_a_truncated_file_is_declined(cut_at: int) -> None:
    ds = make_dataset(rows=8, columns=8)
    data = to_bytes(ds)[:cut_at]
    assert single_frame(data, "1.2.840.10008.1.2.1", facts_of(ds)) is None


def test_more_than_one_frame_is_declined() -> None:
    ds = make_dataset(rows=8, columns=8)
    facts = facts_of(ds)
    many = PixelFacts(**{**facts.__dict__, "number_of_frames": 2})
    assert single_frame(to_bytes(ds), "1.2.840.10008.1.2.1", many) is None
