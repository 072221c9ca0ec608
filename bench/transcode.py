"""Benchmark the transcoding engine: per-modality codec speed and size, and CLI throughput.

    .venv/bin/python bench/transcode.py [--files 1000] [--workers 2]

Part 1 (same frames for every codec): per modality of the pydicom corpora, ms/frame for HTJ2K
encode+verify (dicomgate's own path), JPEG 2000 lossless encode+verify and JPEG-LS lossless
encode+verify, and the size ratios raw/HTJ2K, HTJ2K/J2K, HTJ2K/JPEG-LS. Every codec's output is
decoded again and compared: mismatches are counted.

Part 2: N generated CT-like files (CT_small.dcm upscaled to 512×512 with noise). Files/s of
``dicomgate transcode`` as a whole process vs a plain single-process loop (pydicom read → encode →
decode-verify → write) over the same files.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from io import BytesIO
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.pixels import iter_pixels
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicomgate.codec import htj2k
from dicomgate.codec.capabilities import HTJ2K_LOSSLESS
from dicomgate.codec.plan import EncodePlan
from dicomgate.codec.transcode import TranscodeOptions, transcode

SITE = Path(pydicom.__file__).parent
CORPORA = [SITE / "data" / "test_files", SITE.parent / "data_store" / "data"]
MODALITY_GROUPS = {"CR": "CR/DX", "DX": "CR/DX", "MG": "CR/DX", "OT": "OT/SC", "SC": "OT/SC"}


def _corpus_frames() -> dict[str, list[tuple[np.ndarray, int, bool]]]:
    """Decoded frames of every corpus file dicomgate converts, grouped by modality."""
    groups: dict[str, list[tuple[np.ndarray, int, bool]]] = defaultdict(list)
    seen: set[str] = set()
    for root in CORPORA:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            try:
                result = transcode(data)
            except Exception:
                continue
            if not result.converted:
                continue
            ds = pydicom.dcmread(BytesIO(result.data))
            key = f"{ds.SOPInstanceUID}"
            if key in seen:  # the corpora hold the same image in several syntaxes
                continue
            seen.add(key)
            modality = str(ds.get("Modality", "OT")) or "OT"
            group = MODALITY_GROUPS.get(modality, modality)
            stored, signed = int(ds.BitsStored), bool(ds.PixelRepresentation)
            for frame in iter_pixels(ds, raw=True):
                groups[group].append((np.ascontiguousarray(frame), stored, signed))
    return groups


def _timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def _htj2k(frame: np.ndarray, stored: int, signed: bool) -> bytes:
    plan = EncodePlan("htj2k", HTJ2K_LOSSLESS, None, frame.ndim == 3, stored, signed, 5)
    return htj2k.encode_frame(frame, plan)


def bench_codecs() -> None:
    groups = _corpus_frames()
    header = (
        f"{'modality':8} {'frames':>6} {'HTJ2K ms':>9} {'J2K ms':>8} {'JLS ms':>8} "
        f"{'speedup':>8} {'raw/HT':>7} {'HT/J2K':>7} {'HT/JLS':>7}"
    )
    print("\nPer modality, ms/frame for encode+verify (decode and compare), lossless:")
    print(header)
    totals = defaultdict(float)
    mismatches = skipped = 0
    for group in sorted(groups):
        t = defaultdict(float)
        size = defaultdict(int)
        usable = []
        for frame, stored, signed in groups[group]:
            jls_input = frame.view(frame.dtype.str.replace("i", "u")) if signed else frame
            try:  # CharLS refuses some layouts: those frames are left out for every codec
                imagecodecs.jpegls_encode(jls_input, level=0)
            except ValueError:
                skipped += 1
                continue
            usable.append((frame, stored, signed, jls_input))
        for frame, stored, signed, jls_input in usable:
            size["raw"] += frame.nbytes
            ht, dt = _timed(_htj2k, frame, stored, signed)
            dec, dt2 = _timed(imagecodecs.htj2k_decode, ht, planar=False)
            mismatches += not np.array_equal(dec, frame)
            t["ht"] += dt + dt2
            size["ht"] += len(ht)
            j2k, dt = _timed(
                imagecodecs.jpeg2k_encode,
                frame,
                level=0,
                codecformat="J2K",
                reversible=True,
                bitspersample=stored,
                mct=frame.ndim == 3,
                numthreads=1,
            )
            dec, dt2 = _timed(imagecodecs.jpeg2k_decode, j2k)
            mismatches += not np.array_equal(dec, frame)
            t["j2k"] += dt + dt2
            size["j2k"] += len(j2k)
            jls, dt = _timed(imagecodecs.jpegls_encode, jls_input, level=0)
            dec, dt2 = _timed(imagecodecs.jpegls_decode, jls)
            mismatches += not np.array_equal(dec, jls_input)
            t["jls"] += dt + dt2
            size["jls"] += len(jls)
        n = len(usable)
        if not n:
            continue
        for k in ("ht", "j2k", "jls"):
            totals[k] += t[k]
            totals["size_" + k] += size[k]
        totals["raw"] += size["raw"]
        totals["n"] += n
        print(
            f"{group:8} {n:6d} {1000 * t['ht'] / n:9.2f} {1000 * t['j2k'] / n:8.2f} "
            f"{1000 * t['jls'] / n:8.2f} {t['j2k'] / t['ht']:7.1f}x "
            f"{size['raw'] / size['ht']:7.2f} {size['ht'] / size['j2k']:7.3f} "
            f"{size['ht'] / size['jls']:7.3f}"
        )
    n = totals["n"]
    print(
        f"{'ALL':8} {int(n):6d} {1000 * totals['ht'] / n:9.2f} {1000 * totals['j2k'] / n:8.2f} "
        f"{1000 * totals['jls'] / n:8.2f} {totals['j2k'] / totals['ht']:7.1f}x "
        f"{totals['raw'] / totals['size_ht']:7.2f} "
        f"{totals['size_ht'] / totals['size_j2k']:7.3f} "
        f"{totals['size_ht'] / totals['size_jls']:7.3f}"
    )
    print(
        f"pixel mismatches (all codecs, all frames): {mismatches}; "
        f"frames left out (JPEG-LS refused the layout): {skipped}"
    )


def make_ct_files(folder: Path, count: int) -> None:
    """``count`` CT-like 512×512 16-bit files from CT_small.dcm, upscaled with noise."""
    ds = pydicom.dcmread(CORPORA[0] / "CT_small.dcm")
    base = np.kron(ds.pixel_array.astype(np.int32), np.ones((4, 4), dtype=np.int32))
    rng = np.random.default_rng(0)
    ds.Rows, ds.Columns = 512, 512
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for i in range(count):
        noisy = base + rng.normal(0, 8, size=base.shape).round().astype(np.int32)
        ds.PixelData = np.clip(noisy, -32768, 32767).astype("<i2").tobytes()
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.save_as(folder / f"ct{i:04d}.dcm", enforce_file_format=True)


def plain_loop(src: Path, out: Path) -> None:
    """The baseline: one process, read → encode → decode-verify → write, file after file."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        ds = pydicom.dcmread(path)
        frame = ds.pixel_array
        stream = imagecodecs.htj2k_encode(frame, reversible=True)
        if not np.array_equal(imagecodecs.htj2k_decode(stream), frame):
            raise SystemExit(f"mismatch in {path}")
        ds.PixelData = encapsulate([bytes(stream)], has_bot=True)
        ds.file_meta.TransferSyntaxUID = HTJ2K_LOSSLESS
        ds.save_as(out / path.name, enforce_file_format=True)


def bench_cli(count: int, workers: int, rounds: int) -> None:
    """Both sides as whole processes (interpreter start and imports included), alternated."""
    with tempfile.TemporaryDirectory(prefix="dicomgate-bench-") as tmp:
        root = Path(tmp)
        src = root / "in"
        src.mkdir()
        make_ct_files(src, count)
        plain_cmd = [sys.executable, __file__, "--plain-loop", str(src), str(root / "plain")]
        cli = [
            sys.executable,
            "-m",
            "dicomgate.cli",
            "transcode",
            str(src),
            "-o",
            str(root / "cli"),
            "--workers",
            str(workers),
        ]
        plains, wholes = [], []
        for _ in range(rounds):
            for cmd, times, out in ((plain_cmd, plains, "plain"), (cli, wholes, "cli")):
                shutil.rmtree(root / out, ignore_errors=True)
                proc, seconds = _timed(subprocess.run, cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(proc.stdout + proc.stderr)
                times.append(seconds)
        converted = sum(1 for _ in (root / "cli").iterdir())
        plain, whole = statistics.median(plains), statistics.median(wholes)
        ratios = sorted(p / w for p, w in zip(plains, wholes, strict=True))
        print(
            f"\n{count} CT-like 512×512 files, {workers} workers, {rounds} alternated rounds "
            "(medians; both sides timed as whole processes):"
        )
        print(f"  plain single-process loop : {count / plain:7.1f} files/s ({plain:.1f} s)")
        print(
            f"  dicomgate transcode       : {count / whole:7.1f} files/s ({whole:.1f} s), "
            f"{converted} outputs"
        )
        print(
            f"  speedup (median of rounds): {statistics.median(ratios):.2f}x "
            f"(min {ratios[0]:.2f}x, max {ratios[-1]:.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-codecs", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plain-loop", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_loop:
        plain_loop(Path(args.plain_loop[0]), Path(args.plain_loop[1]))
        return
    warnings.simplefilter("ignore")
    print(
        f"HTJ2K {imagecodecs.htj2k_version()}, JPEG 2000 {imagecodecs.jpeg2k_version()}, "
        f"JPEG-LS {imagecodecs.jpegls_version()}"
    )
    _ = TranscodeOptions()
    if not args.skip_codecs:
        bench_codecs()
    bench_cli(args.files, args.workers, args.rounds)


if __name__ == "__main__":
    main()
