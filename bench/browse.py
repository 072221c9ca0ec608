"""Latency of dicomgate's instance listing next to Orthanc's own, for one 500-instance series.

Self-contained: starts its own Orthanc (``tests/orthanc_process.py``) and dicomgate (uvicorn, in
a subprocess on a loopback port), stores a generated series, then alternates
``GET /api/orthanc/instances/?series_id=`` (dicomgate) with ``GET /series/{id}/instances``
(Orthanc 1.10: already expanded) over keep-alive connections and prints the medians and ratio.

    .venv/bin/python bench/browse.py [--instances 500] [--rounds 40] [--size 128]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydicom.uid import generate_uid  # noqa: E402
from tests.builders import make_dataset, to_bytes  # noqa: E402
from tests.dicomgate_process import start_dicomgate  # noqa: E402
from tests.orthanc_process import OrthancProcess  # noqa: E402


def store_series(orthanc: OrthancProcess, *, instances: int, size: int) -> str:
    """Store one generated series (shuffled instance numbers); return its Orthanc ID."""
    study, series = generate_uid(), generate_uid()
    numbers = list(range(1, instances + 1))
    numbers.reverse()

    def one(number: int) -> str:
        ds = make_dataset(
            rows=size,
            columns=size,
            study_uid=study,
            series_uid=series,
            instance_number=number,
            PixelSpacing=[0.7, 0.7],
            SliceThickness=1.0,
            SliceLocation=float(number),
            ImagePositionPatient=[0, 0, float(number)],
        )
        return orthanc.store(to_bytes(ds))["ParentSeries"]

    with ThreadPoolExecutor(4) as pool:
        parents = set(pool.map(one, numbers))
    assert len(parents) == 1
    return parents.pop()


def timed(client: httpx.Client, path: str, params: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    response = client.get(path, params=params)
    response.raise_for_status()
    response.json()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--size", type=int, default=128, help="rows = columns of each image")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dicomgate-bench-") as tmp:
        workdir = Path(tmp)
        orthanc = OrthancProcess(workdir / "orthanc")
        orthanc.start()
        dicomgate: subprocess.Popen[bytes] | None = None
        try:
            t0 = time.perf_counter()
            series_id = store_series(orthanc, instances=args.instances, size=args.size)
            print(
                f"stored {args.instances} instances of {args.size}×{args.size} "
                f"in {time.perf_counter() - t0:.1f} s"
            )
            dicomgate, url = start_dicomgate(orthanc.url, workdir)
            with httpx.Client(base_url=orthanc.url) as direct, httpx.Client(base_url=url) as gate:
                listing = {"series_id": series_id}
                start = time.perf_counter()
                body = gate.get("/api/orthanc/instances/", params=listing).json()
                cold = (time.perf_counter() - start) * 1000
                assert len(body) == args.instances, len(body)
                assert [i["instanceNumberInt"] for i in body] == list(range(1, args.instances + 1))
                assert body[0]["rows"] == str(args.size) and body[0]["pixelSpacing"] == "0.7\\0.7"
                # The first listing read the non-indexed tags (Rows, Pixel Spacing, …) from the
                # stored files through instances-tags; later ones are served from the tag cache.
                cold_tags = timed(direct, f"/series/{series_id}/instances-tags", {"simplify": ""})
                ours, theirs = [], []
                for _ in range(args.rounds):
                    theirs.append(timed(direct, f"/series/{series_id}/instances"))
                    ours.append(timed(gate, "/api/orthanc/instances/", listing))
                mine, orth = statistics.median(ours), statistics.median(theirs)
                print(
                    f"Orthanc  GET /series/{{id}}/instances (expanded)      median {orth:7.1f} ms"
                )
                print(
                    f"dicomgate GET /api/orthanc/instances/?series_id=     median "
                    f"{mine:7.1f} ms  (warm tag cache)"
                )
                print(f"ratio dicomgate / Orthanc: {mine / orth:.2f}x  (target ≤ 1.5x)")
                print(
                    f"first (cold) dicomgate listing: {cold:.1f} ms; Orthanc's own "
                    f"/series/{{id}}/instances-tags?simplify: {cold_tags:.1f} ms"
                )
        finally:
            if dicomgate is not None:
                dicomgate.terminate()
                dicomgate.wait(timeout=20)
            orthanc.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
