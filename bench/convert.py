"""Benchmark: in-place HTJ2K conversion vs a plain download + re-upload round trip.

Usage (from the project folder): ``.venv/bin/python bench/convert.py [--instances 500]
[--journal folder|database|both] [--repeats N] [--queue-workers 1,2 [--studies 8]]``. Starts its
own Orthanc (OverwriteInstances off) in a temporary folder, stores generated CT-like slices
(512×512, 16-bit allocated, 12 stored; ``--studies`` studies), then measures (1) the round trip
each instance needs without conversion (download, delete, re-post) and (2) the real conversion
job: run in this process with SQLite and its journal folder, or PostgreSQL and its journal
table (``both``: alternately, on a fresh corpus each time); with ``--queue-workers``, on the
PostgreSQL task queue by that many ``dicomgate worker`` processes (each with ``--workers`` codec
processes), timed from the job's start to its end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.builders import make_dataset, to_bytes
from tests.databases import fresh_database
from tests.orthanc_process import OrthancProcess

from dicomgate.conversions.plan import make_selection
from dicomgate.conversions.queue import open_queue
from dicomgate.conversions.repository import get_job
from dicomgate.conversions.service import run_job, start_or_resume
from dicomgate.db import session_scope
from dicomgate.migrations import upgrade_database
from dicomgate.runtime import Runtime, open_runtime
from dicomgate.settings import Settings


def ct_slice(index: int, rng: np.random.Generator) -> np.ndarray:
    """A CT-like slice: air, a body ellipse of soft tissue, a bone ring, noise (12-bit)."""
    y, x = np.mgrid[-256:256, -256:256].astype(np.float32)
    body = (x / 200) ** 2 + (y / (150 + index % 20)) ** 2 <= 1
    bone = ((x / 60) ** 2 + (y / 50) ** 2 <= 1) & ((x / 45) ** 2 + (y / 35) ** 2 > 1)
    image = np.full((512, 512), 24.0, dtype=np.float32)  # air (HU -1000 + 1024)
    image[body] = 1064.0
    image[bone] = 2000.0
    image += rng.normal(0, 12, size=image.shape) * body
    return np.clip(image, 0, 4095).astype(np.uint16)


async def round_trip(settings: Settings, concurrency: int) -> float:
    """Seconds to download, delete and re-post every instance (no conversion)."""
    async with open_runtime(settings) as runtime:
        ids: list[str] = [i["ID"] for i in await runtime.orthanc.list_expanded("instances")]
        queue = list(ids)
        started = time.perf_counter()

        async def worker() -> None:
            while queue:
                orthanc_id = queue.pop()
                data = await runtime.orthanc.instance_file(orthanc_id)
                await runtime.orthanc.delete("instances", orthanc_id)
                await runtime.orthanc.store_instance(data)
                await runtime.orthanc.instance_file(orthanc_id)  # the verify download

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def convert(settings: Settings, concurrency: int) -> tuple[float, int, int, int]:
    async with open_runtime(settings) as runtime:
        await runtime.pool.run(pow, 2, 2)  # workers up before timing
        job_id = await start_or_resume(
            runtime, selection=make_selection(all_studies=True), dry_run=False, resume=False
        )
        started = time.perf_counter()
        summary = await run_job(runtime, job_id, concurrency=concurrency)
        elapsed = time.perf_counter() - started
        return elapsed, summary.converted, summary.bytes_before, summary.bytes_after


async def convert_on_queue(
    settings: Settings, concurrency: int, processes: int
) -> tuple[float, int, int, int]:
    """The job on the task queue, converted by ``processes`` ``dicomgate worker`` processes
    (started and registered before the clock starts)."""
    env = {
        **os.environ,
        "DICOMGATE_ORTHANC_URL": settings.orthanc_url,
        "DICOMGATE_DATABASE_URL": settings.database_url,
        "DICOMGATE_WORKERS": str(settings.workers),
        "DICOMGATE_LOG_LEVEL": os.environ.get("BENCH_WORKER_LOG_LEVEL", "WARNING"),
    }
    # Two studies at once: the next study starts while the last instances of one finish.
    command = [sys.executable, "-m", "dicomgate.cli", "worker", "--concurrency", "2"]
    workers = [
        await asyncio.to_thread(subprocess.Popen, command, env=env) for _ in range(processes)
    ]
    try:
        async with open_runtime(settings) as runtime, open_queue(runtime) as queue:
            for _ in range(600):  # each registers once its runtime is open
                if await _registered(runtime) >= processes:
                    break
                await asyncio.sleep(0.2)
            job_id = await start_or_resume(
                runtime, selection=make_selection(all_studies=True), dry_run=False, resume=False
            )
            started = time.perf_counter()
            await queue.start_job(job_id, concurrency=concurrency)
            while True:
                async with session_scope(runtime.sessions) as session:
                    job = await get_job(session, job_id)
                    if job.state not in ("pending", "running"):
                        elapsed = time.perf_counter() - started
                        return elapsed, job.converted, job.bytes_before, job.bytes_after
                await asyncio.sleep(0.05)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait()


async def _registered(runtime: Runtime) -> int:
    async with runtime.engine.connect() as conn:
        query = text("SELECT count(*) FROM procrastinate_workers")
        return int((await conn.execute(query)).scalar_one())


async def measure(
    orthanc: OrthancProcess, folder: Path, files: list[bytes], kind: str, args: argparse.Namespace
) -> tuple[float, float, int, int]:
    """One side-by-side measurement on a fresh corpus: round-trip and conversion instances/s
    with this journal (``folder``: SQLite and its folder; ``database``: PostgreSQL's table)."""
    await asyncio.to_thread(orthanc.clear)
    for data in files:
        await asyncio.to_thread(orthanc.store, data)
    async with fresh_database(
        "sqlite" if kind == "folder" else "postgresql", folder, prefix="bench"
    ) as url:
        settings = Settings(
            orthanc_url=orthanc.url,
            database_url=url,
            workers=args.workers,
            journal_dir=folder / f"journal-{kind}",
        )
        await asyncio.to_thread(upgrade_database, settings)
        trip = await round_trip(settings, args.concurrency)
        if kind.startswith("queue-"):
            processes = int(kind.removeprefix("queue-"))
            elapsed, converted, before, after = await convert_on_queue(
                settings, args.concurrency, processes
            )
        else:
            elapsed, converted, before, after = await convert(settings, args.concurrency)
    return len(files) / trip, converted / elapsed, before, after


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--journal",
        choices=["folder", "database", "both"],
        default="folder",
        help="folder: SQLite and the journal folder; database: PostgreSQL (DICOMGATE_TEST_"
        "POSTGRES_URL) and its journal table; both: side by side, alternating",
    )
    parser.add_argument("--repeats", type=int, default=1, help="measurements per journal")
    parser.add_argument(
        "--queue-workers",
        default="",
        help="e.g. 1,2: also measure the job on the task queue (PostgreSQL) with that many "
        "`dicomgate worker` processes",
    )
    parser.add_argument(
        "--studies", type=int, default=1, help="studies the instances are spread over"
    )
    args = parser.parse_args()
    kinds = ["folder", "database"] if args.journal == "both" else [args.journal]
    kinds += [f"queue-{n.strip()}" for n in args.queue_workers.split(",") if n.strip()]
    rates: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "orthanc").mkdir()
        orthanc = OrthancProcess(folder / "orthanc")
        orthanc.start()
        try:
            rng = np.random.default_rng(1)
            studies = [f"1.2.826.0.1.3680043.10.77.{n + 1}" for n in range(args.studies)]
            files = [
                to_bytes(
                    make_dataset(
                        rows=512,
                        columns=512,
                        pixels=ct_slice(i, rng),
                        study_uid=studies[i % args.studies],
                        series_uid=studies[i % args.studies] + ".1",
                        instance_number=i + 1,
                        patient_id="BENCH",
                    )
                )
                for i in range(args.instances)
            ]
            for _ in range(args.repeats):
                for kind in kinds:
                    trip, conv, before, after = asyncio.run(
                        measure(orthanc, folder, files, kind, args)
                    )
                    rates[kind].append((trip, conv))
        finally:
            orthanc.stop()
    print(
        f"instances: {args.instances} (512×512, 16-bit), concurrency {args.concurrency}, "
        f"{args.workers} codec workers per process, {args.studies} studies, {args.repeats} "
        "measurement(s) per kind"
    )
    for kind, measured in rates.items():
        name = (
            f"task queue, {kind[6:]} worker process(es), database"
            if kind.startswith("queue-")
            else kind
        )
        trip = statistics.median(t for t, _ in measured)
        conv = statistics.median(c for _, c in measured)
        ratio = statistics.median(c / t for t, c in measured)
        print(
            f"{name} journal: round trip (download, delete, re-post, verify download) "
            f"{trip:.1f} instances/s; conversion {conv:.1f} instances/s; "
            f"conversion / round trip {ratio:.2f}× (medians)"
        )
    if args.journal == "both":
        pairs = zip(rates["folder"], rates["database"], strict=True)
        ratio = statistics.median(d[1] / f[1] for f, d in pairs)
        print(f"conversion rate, database journal / folder journal: {ratio:.2f}× (median)")
    print(
        f"bytes: {before / 2**20:.1f} MiB → {after / 2**20:.1f} MiB "
        f"({100 * (1 - after / before):.1f}% saved)"
    )


if __name__ == "__main__":
    main()
