"""``dicomgate transcode`` as a user runs it: a real subprocess over real files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

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
