"""The worker call (``ingest_file``) on a big multi-frame file: one copy of the file in memory,
not five (the read buffer kept alive and deep-copied, every decoded frame held at once)."""

from __future__ import annotations

import datetime
import hashlib
import tracemalloc
from pathlib import Path

import numpy as np

from dicomgate.codec.capabilities import HTJ2K_LOSSLESS
from dicomgate.codec.transcode import TranscodeOptions
from dicomgate.dicom.demographics import Demographics
from dicomgate.dicom.unify import SeriesAssignment
from dicomgate.ingest.worker import IngestPlan, ingest_file
from tests.builders import from_bytes, make_dataset, to_bytes

NOW = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)


def test_peak_memory_of_a_multi_frame_upload(tmp_path: Path) -> None:
    """Peak ≈ 2× the file (its bytes and their parse, briefly); it was 5.3× before."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:256, 0:256]
    base = (xx * 5 + yy * 2).astype(np.int64)
    pixels = np.stack([base + i + rng.integers(0, 8, size=base.shape) for i in range(48)])
    source = make_dataset(rows=256, columns=256, frames=48, pixels=pixels, bits_stored=12)
    upload = tmp_path / "upload.part"
    upload.write_bytes(to_bytes(source))
    size = upload.stat().st_size
    plan = IngestPlan(
        demographics=Demographics("P-MEM", "Big", "Frames", None, "other"),
        assignment=SeriesAssignment("2.25.1", "Memory", "2.25.2", 1, "multi"),
        options=TranscodeOptions(),
        now=NOW,
    )
    output = tmp_path / "upload.out"

    tracemalloc.start()
    try:
        outcome = ingest_file(str(upload), str(output), plan)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 2.5 * size, f"peak {peak / size:.2f}× the file"
    assert outcome.result.converted and outcome.result.frames == 48
    stored = from_bytes(output.read_bytes())
    assert stored.file_meta.TransferSyntaxUID == HTJ2K_LOSSLESS
    assert (stored.PatientID, stored.StudyInstanceUID) == ("P-MEM", "2.25.1")
    np.testing.assert_array_equal(stored.pixel_array, source.pixel_array)


def test_an_output_comes_back_inline_only_when_asked_and_small(tmp_path: Path) -> None:
    """``inline_max``: an output that small is returned in ``result.data`` and no file is
    written; a larger one (or any, by default) goes to ``output`` and ``result.data`` is
    empty. Either way the bytes, their MD5 and the identity are those of the same file."""
    pixels = np.arange(64 * 64, dtype=np.int64).reshape(64, 64) % 4000
    source = make_dataset(rows=64, columns=64, pixels=pixels, bits_stored=12)
    upload = tmp_path / "upload.part"
    upload.write_bytes(to_bytes(source))
    plan = IngestPlan(demographics=None, assignment=None, options=TranscodeOptions(), now=NOW)

    on_disk = ingest_file(str(upload), str(tmp_path / "a.out"), plan)
    written = (tmp_path / "a.out").read_bytes()
    assert not on_disk.inline and on_disk.output == str(tmp_path / "a.out")
    assert on_disk.result.data == b"" and on_disk.result.size == len(written)

    too_big = ingest_file(str(upload), str(tmp_path / "b.out"), plan, inline_max=len(written) - 1)
    assert not too_big.inline and (tmp_path / "b.out").read_bytes() == written
    assert too_big.result.data == b""

    inline = ingest_file(str(upload), str(tmp_path / "c.out"), plan, inline_max=len(written))
    assert inline.inline and inline.output == ""
    assert not (tmp_path / "c.out").exists()
    assert inline.result.data == written
    assert inline.output_md5 == on_disk.output_md5 == hashlib.md5(written).hexdigest()
    assert inline.identity == on_disk.identity
    assert inline.result.converted and inline.result.transfer_syntax == HTJ2K_LOSSLESS
    np.testing.assert_array_equal(from_bytes(inline.result.data).pixel_array, source.pixel_array)
