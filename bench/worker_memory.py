"""Peak memory of one worker call (``ingest.worker.ingest_file``) on a big multi-frame file.

The web process only streams (bench/ingest.py measures it); the worker holds the instance while it
parses, stamps, transcodes and verifies it. This runs ``ingest_file`` once in a fresh child process
(the same call the pool makes, with a patient and a folder-upload assignment, so every edit is on
the path) and prints the child's peak RSS, its RSS after imports, and the peak as a multiple of the
file size.

    .venv/bin/python bench/worker_memory.py [--mib 256] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import corpus_ct, make_slices, multiframe_dataset  # noqa: E402

# Runs in the child: measure after imports, then one ingest_file call.
CHILD = r"""
import datetime, json, resource, sys
from pathlib import Path
from dicomgate.codec.transcode import TranscodeOptions
from dicomgate.dicom.demographics import Demographics
from dicomgate.dicom.unify import SeriesAssignment
from dicomgate.ingest.worker import IngestPlan, ingest_file
import imagecodecs, numpy, pydicom  # noqa: F401  (loaded before the baseline)

def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0

baseline = rss()
now = datetime.datetime.now(datetime.UTC)
plan = IngestPlan(
    demographics=Demographics(
        patient_id="BENCH-1", family_name="Bench", given_name="Mark",
        birth_date=datetime.date(1970, 1, 1), gender="other",
    ),
    assignment=SeriesAssignment(
        study_instance_uid="2.25.1", study_description="bench", series_instance_uid="2.25.2",
        series_number=1, series_description="big",
    ),
    options=TranscodeOptions(),
    now=now,
)
outcome = ingest_file(sys.argv[1], sys.argv[2], plan)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({
    "baseline": baseline, "peak": peak, "converted": outcome.result.converted,
    "reason": outcome.result.reason, "frames": outcome.result.frames,
    "size": outcome.result.size, "elapsed": outcome.result.elapsed,
}))
"""


def write_multiframe(path: Path, *, mib: int, size: int, bits_stored: int = 16) -> int:
    """A realistic 16-bit multi-frame CT of about ``mib`` MiB; returns its size in bytes.

    ``bits_stored`` < 16 clips the values to that range (12-bit CT is common, and takes the
    codec's unused-bits check).
    """
    template = corpus_ct()
    [frame] = make_slices(template, slices=1, size=size)
    signed = int(template.PixelRepresentation) == 1
    if signed:
        lo, hi = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    else:
        lo, hi = 0, (1 << bits_stored) - 1
    frame = np.clip(frame, lo + 8, hi - 8).astype(frame.dtype)  # room for the ±8 noise below
    ds = multiframe_dataset(template, frame, mib=mib)
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    ds.save_as(path, enforce_file_format=True)
    return path.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="file size (MiB of pixel data)")
    parser.add_argument("--size", type=int, default=512, help="frame rows = columns")
    parser.add_argument("--bits-stored", type=int, default=16, choices=range(9, 17))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dicomgate-bench-") as tmp:
        source = Path(tmp) / "big.dcm"
        file_size = write_multiframe(
            source, mib=args.mib, size=args.size, bits_stored=args.bits_stored
        )
        run = subprocess.run(
            [sys.executable, "-c", CHILD, str(source), str(Path(tmp) / "out.dcm")],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    mib = 2**20
    growth = result["peak"] - result["baseline"]
    print(
        f"file {file_size / mib:.0f} MiB, {result['frames']} frames "
        f"({args.size}×{args.size}, {args.bits_stored}-bit): converted={result['converted']} "
        f"reason={result['reason']} in {result['elapsed']:.1f} s, output "
        f"{result['size'] / mib:.0f} MiB"
    )
    print(
        f"worker RSS after imports {result['baseline'] / mib:.0f} MiB, peak "
        f"{result['peak'] / mib:.0f} MiB: +{growth / mib:.0f} MiB = "
        f"{growth / file_size:.2f}× the file"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
