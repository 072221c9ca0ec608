"""dicomgate's DICOMweb next to Orthanc's own DICOMweb plugin, on one 300-slice 512² CT study.

Self-contained: starts two Orthancs (``tests/orthanc_process.py``) and two dicomgates (uvicorn
subprocesses, authentication off, on loopback):

- Orthanc A loads Debian's ``orthanc-dicomweb`` plugin and holds the study uncompressed, stored
  straight into it; dicomgate A is in front of it.
- Orthanc B holds the same study stored through dicomgate B's STOW-RS, that is as HTJ2K.

Then, over keep-alive connections: series metadata for the 300 instances (first request, then
the median of ``--rounds``), and every frame of the series (``--concurrency`` parallel requests,
like a viewer): as stored (``transfer-syntax=*``) from the plugin and from both dicomgates, and
decoded to uncompressed from dicomgate B. Prints medians, frames per second, bytes sent per
frame and the ratios to the plugin side by side; checks a few frames bit-exact on the way.

    .venv/bin/python bench/dicomweb.py [--slices 300] [--size 512] [--rounds 10] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import imagecodecs
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydicom.uid import generate_uid  # noqa: E402
from tests.builders import make_dataset, to_bytes  # noqa: E402
from tests.dicomgate_process import start_dicomgate, stop_dicomgate  # noqa: E402
from tests.orthanc_process import OrthancProcess  # noqa: E402

PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
AS_STORED = "multipart/related; type=application/octet-stream; transfer-syntax=*"
UNCOMPRESSED = (
    "multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
)
BOUNDARY = "bench-dicomweb-7f3a"


@dataclass
class Study:
    study: str
    series: str
    sops: list[str]
    pixels: list[np.ndarray]  # kept for a few bit-exact checks
    files: list[bytes]


def phantom(number: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A CT-like slice: air, a body ellipse, an organ that moves along z, bone, noise (σ 12 HU)."""
    yy, xx = np.mgrid[0:size, 0:size] * (512 / size)
    image = np.full((size, size), -1000.0)
    image[((xx - 256) / 200.0) ** 2 + ((yy - 256) / 160.0) ** 2 < 1] = 40
    image[((xx - 200 - number / 5) / 60.0) ** 2 + ((yy - 240) / 50.0) ** 2 < 1] = 60 + number / 10
    image[((xx - 256) / 25.0) ** 2 + ((yy - 380) / 25.0) ** 2 < 1] = 700
    image += rng.normal(0, 12, image.shape)
    return np.clip(image + 1024, 0, 4095).astype(np.uint16)


def make_study(slices: int, size: int) -> Study:
    rng = np.random.default_rng(1)
    study, series = generate_uid(), generate_uid()
    out = Study(study, series, [], [], [])
    for number in range(1, slices + 1):
        pixels = phantom(number, size, rng)
        ds = make_dataset(
            rows=size,
            columns=size,
            study_uid=study,
            series_uid=series,
            instance_number=number,
            pixels=pixels,
            PixelSpacing=[0.7, 0.7],
            SliceThickness=1.0,
            ImagePositionPatient=[0, 0, float(number)],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            RescaleIntercept=-1024,
            RescaleSlope=1,
            WindowCenter=40,
            WindowWidth=400,
        )
        out.sops.append(str(ds.SOPInstanceUID))
        out.pixels.append(pixels)
        out.files.append(to_bytes(ds))
    return out


def stow(client: httpx.Client, url: str, files: list[bytes]) -> None:
    body = (
        b"".join(
            f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + f + b"\r\n"
            for f in files
        )
        + f"--{BOUNDARY}--\r\n".encode()
    )
    answer = client.post(
        f"{url}/dicomweb/studies",
        content=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
        },
        timeout=600,
    )
    assert answer.status_code == 200, answer.text[:500]


def parts(answer: httpx.Response) -> list[bytes]:
    boundary = answer.headers["Content-Type"].split("boundary=")[1].split(";")[0].strip('"')
    out = []
    for chunk in answer.content.split(f"--{boundary}".encode())[1:]:
        if chunk.startswith(b"--"):
            break
        out.append(chunk.partition(b"\r\n\r\n")[2][:-2])
    return out


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    size = fn()
    return (time.perf_counter() - start) * 1000, size


def metadata(client: httpx.Client, url: str) -> int:
    answer = client.get(url, headers={"Accept": "application/dicom+json"})
    answer.raise_for_status()
    assert len(answer.json()) > 0
    return len(answer.content)


@dataclass
class FrameRun:
    frames_per_second: float
    bytes_per_frame: float


def all_frames(
    client: httpx.Client, frame_urls: list[str], accept: str, concurrency: int
) -> FrameRun:
    def one(url: str) -> int:
        answer = client.get(url, headers={"Accept": accept})
        answer.raise_for_status()
        return len(answer.content)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        sizes = list(pool.map(one, frame_urls))
    elapsed = time.perf_counter() - start
    return FrameRun(len(frame_urls) / elapsed, sum(sizes) / len(sizes))


def report_metadata(client: httpx.Client, sides: dict[str, str], path: str, rounds: int) -> None:
    """First request and median of ``rounds`` for each side; ratios to the plugin."""
    medians = {}
    for name, base in sides.items():
        url = f"{base}/{path}/metadata"
        first, size = timed(lambda url=url: metadata(client, url))
        runs = [timed(lambda url=url: metadata(client, url))[0] for _ in range(rounds)]
        medians[name] = statistics.median(runs)
        print(
            f"  {name:42s} first {first:8.1f} ms  median {medians[name]:8.1f} ms  "
            f"({size / 1024:.0f} KiB)"
        )
    plugin = medians[PLUGIN_SIDE]
    for name in list(sides)[1:]:
        print(f"  ratio {name} / plugin (median): {medians[name] / plugin:.2f}x (target ≤ 1.5x)")


def check_frames(client: httpx.Client, study: Study, urls: dict[str, list[str]]) -> None:
    """A few frames bit-exact: stored HTJ2K (OpenJPH), decoded, and the plugin's."""
    for index in (0, len(study.sops) // 2, len(study.sops) - 1):
        url = urls[GATE_B][index]
        [stored] = parts(client.get(url, headers={"Accept": AS_STORED}))
        [plain] = parts(client.get(url, headers={"Accept": UNCOMPRESSED}))
        [theirs] = parts(client.get(urls[PLUGIN_SIDE][index], headers={"Accept": AS_STORED}))
        expected = study.pixels[index]
        assert np.array_equal(imagecodecs.htj2k_decode(stored), expected)
        assert plain == expected.astype("<u2").tobytes() == theirs


def report_frames(client: httpx.Client, urls: dict[str, list[str]], concurrency: int) -> None:
    runs = {
        "plugin, as stored (uncompressed)": all_frames(
            client, urls[PLUGIN_SIDE], AS_STORED, concurrency
        ),
        "dicomgate A, as stored (uncompressed)": all_frames(
            client, urls[GATE_A], AS_STORED, concurrency
        ),
        "dicomgate B, as stored (HTJ2K)": all_frames(client, urls[GATE_B], AS_STORED, concurrency),
        "dicomgate B, decoded to uncompressed": all_frames(
            client, urls[GATE_B], UNCOMPRESSED, concurrency
        ),
    }
    base_rate = runs["plugin, as stored (uncompressed)"].frames_per_second
    for name, run in runs.items():
        print(
            f"  {name:40s} {run.frames_per_second:7.1f} frames/s  "
            f"{run.bytes_per_frame / 1024:7.1f} KiB sent per frame  "
            f"{run.frames_per_second / base_rate:5.2f}x the plugin"
        )
    print("  (target: dicomgate B as stored ≥ 1x the plugin's uncompressed rate)")


def store(client: httpx.Client, study: Study, orthanc_a: OrthancProcess, url_b: str) -> None:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(orthanc_a.store, study.files))
    print(f"stored uncompressed in Orthanc A: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    batches = [study.files[i : i + 10] for i in range(0, len(study.files), 10)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda batch: stow(client, url_b, batch), batches))
    print(f"stored as HTJ2K through dicomgate B's STOW-RS: {time.perf_counter() - t0:.1f} s")


PLUGIN_SIDE = "Orthanc DICOMweb plugin (uncompressed)"
GATE_A = "dicomgate A (uncompressed)"
GATE_B = "dicomgate B (HTJ2K)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--plugin", default=PLUGIN, help="libOrthancDicomWeb.so")
    args = parser.parse_args()
    if not Path(args.plugin).exists():
        print(f"{args.plugin} is missing: apt-get install -y orthanc-dicomweb", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="dicomgate-bench-") as tmp:
        work = Path(tmp)
        for name in ("a", "b", "gate-a", "gate-b"):
            (work / name).mkdir()
        plugin_config = {
            "Plugins": [args.plugin],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        }
        orthanc_a = OrthancProcess(work / "a", extra_config=plugin_config)
        orthanc_b = OrthancProcess(work / "b")
        gates: list[subprocess.Popen[bytes]] = []
        try:
            orthanc_a.start()
            orthanc_b.start()
            gate_a, url_a = start_dicomgate(orthanc_a.url, work / "gate-a", workers=2)
            gates.append(gate_a)
            gate_b, url_b = start_dicomgate(orthanc_b.url, work / "gate-b", workers=2)
            gates.append(gate_b)
            t0 = time.perf_counter()
            study = make_study(args.slices, args.size)
            print(
                f"generated {args.slices} slices of {args.size}² "
                f"in {time.perf_counter() - t0:.1f} s"
            )
            with httpx.Client(timeout=600, headers={"Accept-Encoding": "identity"}) as client:
                store(client, study, orthanc_a, url_b)
                answer = client.get(f"{orthanc_b.url}/instances", params={"expand": ""})
                sizes = [int(i["FileSize"]) for i in answer.json()]
                original = sum(map(len, study.files)) / len(study.files)
                print(
                    f"mean stored file: {sum(sizes) / len(sizes) / 1024:.0f} KiB as HTJ2K vs "
                    f"{original / 1024:.0f} KiB uncompressed"
                )
                path = f"studies/{study.study}/series/{study.series}"
                sides = {
                    PLUGIN_SIDE: f"{orthanc_a.url}/dicom-web",
                    GATE_A: f"{url_a}/dicomweb",
                    GATE_B: f"{url_b}/dicomweb",
                }
                print(
                    f"\nSeries metadata of {args.slices} instances "
                    f"(first request; median of {args.rounds} more)"
                )
                report_metadata(client, sides, path, args.rounds)
                urls = {
                    name: [f"{base}/{path}/instances/{sop}/frames/1" for sop in study.sops]
                    for name, base in sides.items()
                }
                check_frames(client, study, urls)
                print(
                    f"\nFrame 1 of each of the {args.slices} instances, {args.concurrency} "
                    "requests at a time (after the metadata, as a viewer does)"
                )
                report_frames(client, urls, args.concurrency)
        finally:
            for gate in gates:
                stop_dicomgate(gate)
            orthanc_a.stop()
            orthanc_b.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
