"""The worker call (``ingest_file``) on a big multi-frame file: one copy of the file in memory,
not five (the read buffer kept alive and deep-copied, every decoded frame held at once)."""

from __future__ import annotations

import datetime
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
