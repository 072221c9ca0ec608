"""Ingest throughput: dicomgate (HTJ2K + verification) next to Orthanc alone, raw and compressing.

Self-contained: starts its own Orthanc (``tests/orthanc_process.py``) and dicomgate (uvicorn in a
subprocess on a loopback port), generates a CT series (512×512, 16-bit, from the corpus
``CT_small.dcm`` upscaled, with per-slice anatomy drift and noise), and uploads the same series
(fresh UIDs per run, so nothing is ``AlreadyStored``) through dicomgate's
``POST /api/ris/upload/dicom/``, raw through Orthanc, and through a second Orthanc that compresses
on its own (``IngestTranscoding`` JPEG Lossless SV1, 1.2.840.10008.1.2.4.70: on Orthanc 1.10.1 the
only lossless target that works; unverified), at each concurrency. Prints instances/s, the
ratios, CPU-seconds per instance (dicomgate process tree from /proc, and Orthanc) and bytes
stored (Orthanc's ``TotalDiskSize`` delta).

    .venv/bin/python bench/ingest.py [--slices 300] [--concurrency 1 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.dicomgate_process import start_dicomgate  # noqa: E402
from tests.orthanc_process import OrthancProcess  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
ORTHANC_COMPRESSION = "1.2.840.10008.1.2.4.70"  # JPEG Lossless, Non-Hierarchical, SV1


def corpus_ct() -> Dataset:
    return pydicom.dcmread(Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm")


def upscale(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a 2-D image to size×size (numpy only)."""
    rows, cols = image.shape
    y = np.linspace(0, rows - 1, size)
    x = np.linspace(0, cols - 1, size)
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    y1, x1 = np.minimum(y0 + 1, rows - 1), np.minimum(x0 + 1, cols - 1)
    wy, wx = (y - y0)[:, None], (x - x0)[None, :]
    img = image.astype(np.float64)
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def make_slices(template: Dataset, *, slices: int, size: int) -> list[np.ndarray]:
    """``slices`` realistic 16-bit CT frames: upscaled anatomy, drifting per slice, with noise."""
    base = upscale(template.pixel_array, size)
    rng = np.random.default_rng(2024)
    signed = int(template.PixelRepresentation) == 1
    lo, hi = (-32768, 32767) if signed else (0, 65535)
    dtype = np.int16 if signed else np.uint16
    yy, xx = np.mgrid[0:size, 0:size]
    frames = []
    for i in range(slices):
        phase = 2 * np.pi * i / max(slices, 1)
        drift = 30 * np.sin(xx / 40 + phase) * np.cos(yy / 55 - phase)
        scale = 1.0 + 0.05 * np.sin(phase)
        noisy = base * scale + drift + rng.normal(0, 12, size=base.shape)
        frames.append(np.clip(np.rint(noisy), lo, hi).astype(dtype))
    return frames


def series_files(template: Dataset, frames: list[np.ndarray]) -> list[bytes]:
    """One Part 10 file per frame, with fresh Study/Series/SOP Instance UIDs."""
    study, series = generate_uid(), generate_uid()
    out = []
    for number, frame in enumerate(frames, start=1):
        ds = copy.deepcopy(template)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = number
        ds.ImagePositionPatient = [0.0, 0.0, float(number)]
        ds.SliceLocation = float(number)
        ds.Rows, ds.Columns = frame.shape
        ds.PixelData = frame.tobytes()
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/*/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def cpu_seconds(pid: int, *, tree: bool = True) -> float:
    """User + system CPU seconds of a process tree (or of the process alone)."""
    total = 0
    for p in process_tree(pid) if tree else [pid]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def disk_size(orthanc: OrthancProcess) -> int:
    return int(httpx.get(f"{orthanc.url}/statistics", timeout=30).json()["TotalDiskSize"])


@dataclass
class Run:
    label: str
    concurrency: int
    instances: int
    seconds: float
    gate_cpu: float
    web_cpu: float  # the service process alone (the rest of gate_cpu is its workers)
    orthanc_cpu: float
    stored_bytes: int
    uploaded_bytes: int

    @property
    def rate(self) -> float:
        return self.instances / self.seconds


def upload_all(files: list[bytes], concurrency: int, send: object) -> float:
    assert callable(send)
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, files))
    return time.perf_counter() - start


def measure(
    label: str,
    files: list[bytes],
    concurrency: int,
    *,
    url: str,
    gate_pid: int,
    orthanc: OrthancProcess,
    through_gate: bool,
) -> Run:
    orthanc_pid = orthanc._proc.pid if orthanc._proc else 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(timeout=600, limits=limits) as client:

        def via_gate(data: bytes) -> None:
            r = client.post(
                f"{url}/api/ris/upload/dicom/",
                files={"file": ("slice.dcm", data, "application/dicom")},
            )
            if r.status_code != 201:
                raise RuntimeError(f"dicomgate answered {r.status_code}: {r.text[:300]}")
            body = r.json()
            assert body["converted"] is True, body

        def raw(data: bytes) -> None:
            r = client.post(
                f"{orthanc.url}/instances",
                content=data,
                headers={"Content-Type": "application/dicom"},
            )
            r.raise_for_status()
            assert r.json()["Status"] == "Success"

        disk0, gate0, orth0 = disk_size(orthanc), cpu_seconds(gate_pid), cpu_seconds(orthanc_pid)
        web0 = cpu_seconds(gate_pid, tree=False)
        seconds = upload_all(files, concurrency, via_gate if through_gate else raw)
        return Run(
            label,
            concurrency,
            len(files),
            seconds,
            cpu_seconds(gate_pid) - gate0,
            cpu_seconds(gate_pid, tree=False) - web0,
            cpu_seconds(orthanc_pid) - orth0,
            disk_size(orthanc) - disk0,
            sum(len(f) for f in files),
        )


def rss_peaks(pid: int) -> tuple[int, int]:
    """(VmHWM of ``pid``, largest VmHWM among its descendants) in bytes."""

    def hwm(p: int) -> int:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    children = [hwm(p) for p in process_tree(pid)[1:]]
    return hwm(pid), max(children, default=0)


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def multiframe_dataset(template: Dataset, frame: np.ndarray, *, mib: int) -> Dataset:
    """A multi-frame copy of ``template``, about ``mib`` MiB of pixels (frames vary by noise)."""
    frames = max(1, mib * 1024 * 1024 // frame.nbytes)
    ds = copy.deepcopy(template)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns = frame.shape
    ds.NumberOfFrames = frames
    rng = np.random.default_rng(5)
    stack = np.empty((frames, *frame.shape), dtype=frame.dtype)
    for i in range(frames):
        stack[i] = frame + rng.integers(-8, 8, size=frame.shape).astype(frame.dtype)
    ds.PixelData = stack.tobytes()
    return ds


def big_multiframe(template: Dataset, frame: np.ndarray, *, mib: int) -> Path:
    """``multiframe_dataset`` written to a temp file."""
    path = Path(tempfile.mkstemp(suffix=".dcm")[1])
    multiframe_dataset(template, frame, mib=mib).save_as(path, enforce_file_format=True)
    return path


def measure_big_upload(url: str, gate_pid: int, path: Path) -> None:
    """Upload one big multi-frame file (streamed from disk); report RSS growth of the service."""
    before = vm_rss(gate_pid)
    start = time.perf_counter()

    def body() -> object:
        with path.open("rb") as fh:
            while chunk := fh.read(1024 * 1024):
                yield chunk

    boundary = "dicomgatebenchboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.dcm"\r\nContent-Type: application/dicom\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def stream() -> object:
        yield head
        yield from body()  # type: ignore[misc]
        yield tail

    size = len(head) + path.stat().st_size + len(tail)
    r = httpx.post(
        f"{url}/api/ris/upload/dicom/",
        content=stream(),
        timeout=1800,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(size),
        },
    )
    elapsed = time.perf_counter() - start
    main_peak, worker_peak = rss_peaks(gate_pid)
    print(
        f"big upload {path.stat().st_size / 2**20:.0f} MiB: HTTP {r.status_code} in "
        f"{elapsed:.1f} s; service process RSS before {before / 2**20:.0f} MiB, peak "
        f"{main_peak / 2**20:.0f} MiB (growth {(main_peak - before) / 2**20:.0f} MiB, target "
        f"< 200); largest worker peak {worker_peak / 2**20:.0f} MiB"
    )
    if r.status_code != 201:
        print("  answer:", r.text[:300])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--big-mib",
        type=int,
        default=0,
        help="also upload one multi-frame file of this size (MiB), report RSS",
    )
    args = parser.parse_args()

    template = corpus_ct()
    t0 = time.perf_counter()
    frames = make_slices(template, slices=args.slices, size=args.size)
    print(
        f"generated {args.slices} slices {args.size}×{args.size} 16-bit in "
        f"{time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs, {args.workers} workers"
    )

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="dicomgate-bench-") as tmp:
        workdir = Path(tmp)
        orthanc = OrthancProcess(workdir / "orthanc")
        orthanc.start()
        compressing = OrthancProcess(
            workdir / "orthanc-compressing",
            extra_config={"IngestTranscoding": ORTHANC_COMPRESSION},
        )
        compressing.start()
        gate: subprocess.Popen[bytes] | None = None
        try:
            gate, url = start_dicomgate(orthanc.url, workdir, workers=args.workers)
            # Warm up both paths (worker start, imports, connections) on a few slices.
            warm = series_files(template, frames[:4])
            measure(
                "warm-up", warm, 2, url=url, gate_pid=gate.pid, orthanc=orthanc, through_gate=True
            )
            measure(
                "warm-up",
                warm,
                2,
                url=url,
                gate_pid=gate.pid,
                orthanc=compressing,
                through_gate=False,
            )
            paths = (
                ("orthanc-raw", orthanc, False),
                ("orthanc-.4.70", compressing, False),
                ("dicomgate", orthanc, True),
            )
            for concurrency in args.concurrency:
                for label, target, through_gate in paths:
                    files = series_files(template, frames)
                    run = measure(
                        label,
                        files,
                        concurrency,
                        url=url,
                        gate_pid=gate.pid,
                        orthanc=target,
                        through_gate=through_gate,
                    )
                    runs.append(run)
                    print(
                        f"{label:12s} c={concurrency}: {run.rate:6.1f} inst/s  "
                        f"({run.seconds:.1f} s), dicomgate CPU {run.gate_cpu / run.instances:.3f}"
                        f" s/inst (web {run.web_cpu / run.instances:.3f}, workers "
                        f"{(run.gate_cpu - run.web_cpu) / run.instances:.3f}), Orthanc CPU "
                        f"{run.orthanc_cpu / run.instances:.3f} s/inst, "
                        f"stored {run.stored_bytes / 1e6:.1f} MB of "
                        f"{run.uploaded_bytes / 1e6:.1f} MB uploaded",
                        flush=True,
                    )
            if args.big_mib:
                big = big_multiframe(template, frames[0], mib=args.big_mib)
                try:
                    measure_big_upload(url, gate.pid, big)
                finally:
                    big.unlink()
        finally:
            if gate is not None:
                gate.terminate()
                gate.wait(timeout=30)
            orthanc.stop()
            compressing.stop()

    print("\nsummary")
    for concurrency in args.concurrency:
        raw = next(r for r in runs if r.label == "orthanc-raw" and r.concurrency == concurrency)
        jpl = next(r for r in runs if r.label == "orthanc-.4.70" and r.concurrency == concurrency)
        ours = next(r for r in runs if r.label == "dicomgate" and r.concurrency == concurrency)
        print(
            f"c={concurrency}: dicomgate {ours.rate:.1f} inst/s; Orthanc compressing "
            f"(IngestTranscoding {ORTHANC_COMPRESSION}) {jpl.rate:.1f} inst/s → "
            f"{ours.rate / jpl.rate:.2f}×{'  (target ≥ 0.7×)' if concurrency == 4 else ''}; "
            f"raw Orthanc {raw.rate:.1f} inst/s → {ours.rate / raw.rate:.2f}×"
        )
        print(
            f"      bytes per slice: raw {raw.stored_bytes / raw.instances / 1e3:.0f} KB, "
            f"Orthanc .4.70 {jpl.stored_bytes / jpl.instances / 1e3:.0f} KB (not verified), "
            f"dicomgate HTJ2K {ours.stored_bytes / ours.instances / 1e3:.0f} KB (verified)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
