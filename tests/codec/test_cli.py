"""``dicomgate transcode`` as a user runs it: a real subprocess over real files."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

from dicomgate.codec.capabilities import HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL
from tests.builders import make_dataset, to_bytes
from tests.codec.helpers import independent_pixels, read, source_pixels


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomgate.cli", "transcode", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "a/ct1.dcm": to_bytes(make_dataset(rows=9, columns=7, frames=2)),
        "a/b/ct2.dcm": to_bytes(make_dataset(rows=5, columns=5, signed=True)),
    }
    no_pixels = make_dataset()
    del no_pixels.PixelData
    files["sr.dcm"] = to_bytes(no_pixels)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def test_folder_is_mirrored_converted_and_summarised(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    files = _tree(src)
    proc = _run(
        str(src),
        "-o",
        str(out),
        "--workers",
        "1",
        "--verbose",
        "--target",
        "htj2k-rpcl",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("a/ct1.dcm", "a/b/ct2.dcm"):
        data = (out / name).read_bytes()
        assert read(data).file_meta.TransferSyntaxUID == HTJ2K_LOSSLESS_RPCL
        assert np.array_equal(independent_pixels(data), source_pixels(files[name]))
    assert (out / "sr.dcm").read_bytes() == files["sr.dcm"]  # pass-through copied unchanged
    assert "converted" in proc.stdout and "passed through: no_pixel_data" in proc.stdout
    assert proc.stdout.count(str(src)) == 3  # --verbose: one line per file
    assert "ratio in/out" in proc.stdout and "files/s" in proc.stdout


def test_a_failure_gives_non_zero_exit_and_writes_nothing_for_it(tmp_path: Path) -> None:
    good = tmp_path / "good.dcm"
    good.write_bytes(to_bytes(make_dataset(rows=3, columns=3)))
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"not a DICOM file at all" * 20)
    out = tmp_path / "out"
    proc = _run(str(good), str(bad), "-o", str(out), "--workers", "1", cwd=tmp_path)
    assert proc.returncode == 1
    assert "notes.txt (The file is not DICOM" in proc.stderr
    assert not (out / "notes.txt").exists()
    assert read((out / "good.dcm").read_bytes()).file_meta.TransferSyntaxUID == HTJ2K_LOSSLESS
    assert sorted(p.name for p in out.iterdir()) == ["good.dcm"]  # no partial files left


def test_lossy_jpeg_passes_through_without_error_tracebacks(
    tmp_path: Path, corpus_dir: Path
) -> None:
    # JPEG-lossy.dcm: 12-bit JPEG Extended that pydicom's own plugins cannot decode (each used
    # to log an ERROR with a traceback while dicomgate computed the pass-through's checksums);
    # the second file's pixels no decoder can read at all.
    from tests.browse.test_preview import undecodable_jpeg

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    files = {
        "nema.dcm": (corpus_dir / "JPEG-lossy.dcm").read_bytes(),
        "broken.dcm": undecodable_jpeg(corpus_dir),
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    proc = _run(str(src), "-o", str(out), "--workers", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name, data in files.items():
        assert (out / name).read_bytes() == data  # passed through, byte for byte
    assert re.search(r"passed through: lossy_source\s*│\s*2\s*│", proc.stdout), proc.stdout
    assert "ERROR" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_plugin_failures_are_quiet_only_inside_dicomgates_decoding(
    corpus_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import pydicom

    from dicomgate.codec.decoding import quiet_plugin_failures
    from tests.browse.test_preview import undecodable_jpeg

    ds = pydicom.dcmread(BytesIO(undecodable_jpeg(corpus_dir)))
    with caplog.at_level(logging.INFO), quiet_plugin_failures(), pytest.raises(RuntimeError):
        ds.pixel_array  # noqa: B018
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Outside dicomgate's decoding, pydicom's own logging is untouched.
    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError):
        pydicom.dcmread(BytesIO(undecodable_jpeg(corpus_dir))).pixel_array  # noqa: B018
    assert [r for r in caplog.records if r.levelno >= logging.ERROR]
