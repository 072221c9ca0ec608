"""The topology of a scaled-out deployment, with real processes: two `dicomgate serve` (no
in-process worker) and two `dicomgate worker` on one PostgreSQL, in front of two Orthanc nodes
sharing one PostgreSQL index and one storage folder. `--all` is converted while one worker is
killed (kill -9) several times at random moments and restarted. At the end every instance is
HTJ2K, pixel-identical (pylibjpeg-openjpeg, not the codec dicomgate encodes with), present
exactly once, replaced once; no journal entry is left and the job's counters are exact."""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from io import BytesIO
from pathlib import Path

import httpx
import pydicom
import pytest
from sqlalchemy import select

from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from dicomgate.conversions.journals import DatabaseJournal
from dicomgate.conversions.models import ConversionOutcome
from dicomgate.db import create_engine, create_sessionmaker, session_scope
from dicomgate.migrations import upgrade_database
from dicomgate.settings import Settings
from tests.builders import make_dataset, to_bytes
from tests.conversions.helpers import decoded_crc32s
from tests.databases import fresh_database
from tests.dicomgate_process import start_dicomgate, stop_dicomgate
from tests.orthanc_cluster import shared_index_nodes
from tests.orthanc_process import OrthancProcess

pytestmark = pytest.mark.postgres

STUDIES = [f"1.2.826.0.1.3680043.10.9.{300 + n}" for n in range(5)]
PER_STUDY = 80  # 400 instances
KILLS = 4
FAST = {
    "DICOMGATE_WORKER_HEARTBEAT": "1",
    "DICOMGATE_WORKER_STALLED_AFTER": "4",
    "DICOMGATE_RESUME_CONVERSIONS_EVERY": "1",
    "DICOMGATE_LOG_LEVEL": "INFO",
    "DICOMGATE_WORKERS": "1",
}


def store_corpus(nodes: list[OrthancProcess]) -> dict[str, tuple[int, ...]]:
    """Each study through both nodes, alternately; the decoded frames' CRCs by Orthanc ID."""
    crcs = {}
    for s, study in enumerate(STUDIES):
        for n in range(PER_STUDY):
            data = to_bytes(
                make_dataset(rows=48, columns=48, study_uid=study, instance_number=n + 1)
            )
            node = nodes[(s + n) % len(nodes)]
            crcs[node.store(data)["ID"]] = decoded_crc32s(data)
    return crcs


class Worker:
    """`dicomgate worker` as a process one can kill -9 and start again (each life, its log)."""

    def __init__(self, name: str, orthanc: OrthancProcess, database_url: str, folder: Path):
        self.name, self.folder = name, folder
        self.env = {
            **os.environ,
            "DICOMGATE_ORTHANC_URL": orthanc.url,
            "DICOMGATE_DATABASE_URL": database_url,
            "DICOMGATE_JOURNAL_DIR": str(folder / "journal"),
            **FAST,
        }
        self.lives = 0
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.lives += 1
        with (self.folder / f"{self.name}-{self.lives}.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dicomgate.cli", "worker", "--concurrency", "2"],
                env=self.env,
                cwd=self.folder,
                stderr=log,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_ended(url: str, job_id: int, workers: list[Worker], timeout: float = 420) -> dict:
    """Poll the job; kill -9 the first worker KILLS times at random moments while it runs."""
    rng = random.Random(16)
    next_kill = time.monotonic() + rng.uniform(1.0, 3.0)
    kills = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict = httpx.get(f"{url}/api/ris/conversions/{job_id}/", timeout=30).json()
        if body["state"] in ("completed", "cancelled", "failed"):
            body["kills"] = kills
            return body
        if kills < KILLS and time.monotonic() >= next_kill:
            workers[0].kill()
            kills += 1
            time.sleep(rng.uniform(0.0, 1.0))
            workers[0].start()
            next_kill = time.monotonic() + rng.uniform(2.0, 5.0)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end: {body}")


def served_everywhere(nodes: list[OrthancProcess], crcs: dict[str, tuple[int, ...]]) -> None:
    for node in nodes:
        assert sorted(httpx.get(f"{node.url}/instances", timeout=60).json()) == sorted(crcs)
    sops = Counter()
    for n, (orthanc_id, expected) in enumerate(sorted(crcs.items())):
        node = nodes[n % len(nodes)]
        data = httpx.get(f"{node.url}/instances/{orthanc_id}/file", timeout=60).content
        ds = pydicom.dcmread(BytesIO(data))
        assert ds.file_meta.TransferSyntaxUID in HTJ2K_SYNTAXES, orthanc_id
        assert decoded_crc32s(data) == expected, orthanc_id
        sops[ds.SOPInstanceUID] += 1
    assert set(sops.values()) == {1}


def read_logs(folder: Path) -> str:
    return "".join(p.read_text() for p in sorted(folder.glob("worker*/worker*.log")))


REPLACED = re.compile(r"Replaced instance ([0-9a-f-]+):")
FINISHED = re.compile(r"Recovered instance ([0-9a-f-]+): the converted file is in place")


async def test_workers_killed_at_random_lose_nothing_and_convert_each_instance_once(
    tmp_path: Path,
) -> None:
    async with shared_index_nodes(tmp_path / "orthanc", 2) as nodes:
        crcs = await asyncio.to_thread(store_corpus, nodes)
        async with fresh_database("postgresql", tmp_path, prefix="topology") as url:
            await asyncio.to_thread(
                upgrade_database, Settings(orthanc_url=nodes[0].url, database_url=url)
            )
            serves = []
            workers = [
                Worker(f"worker{n}", nodes[n], url, tmp_path / f"worker{n}") for n in range(2)
            ]
            try:
                for n in range(2):
                    folder = tmp_path / f"serve{n}"
                    folder.mkdir()
                    serves.append(
                        await asyncio.to_thread(
                            start_dicomgate,
                            nodes[n].url,
                            folder,
                            env={
                                "DICOMGATE_DATABASE_URL": url,
                                "DICOMGATE_IN_PROCESS_WORKER": "false",
                                **FAST,
                            },
                        )
                    )
                for worker in workers:
                    worker.start()
                answer = await asyncio.to_thread(
                    httpx.post,
                    f"{serves[0][1]}/api/ris/conversions/",
                    json={"all": True, "concurrency": 4},
                    timeout=30,
                )
                assert answer.status_code == 202, answer.text
                job_id = answer.json()["id"]
                body = await asyncio.to_thread(wait_ended, serves[1][1], job_id, workers)
            finally:
                for worker in workers:
                    await asyncio.to_thread(worker.stop)
                for proc, _ in serves:
                    await asyncio.to_thread(stop_dicomgate, proc)
            engine = create_engine(url)
            try:
                journal_left = await DatabaseJournal(engine).count_pending()
                async with session_scope(create_sessionmaker(engine)) as session:
                    outcomes = Counter(
                        (row.orthanc_id, row.outcome)
                        for row in await session.scalars(
                            select(ConversionOutcome).where(ConversionOutcome.job_id == job_id)
                        )
                    )
            finally:
                await engine.dispose()
        await asyncio.to_thread(served_everywhere, nodes, crcs)

    total = len(STUDIES) * PER_STUDY
    assert body["kills"] == KILLS, body
    assert body["state"] == "completed", body
    assert (body["instances_total"], body["converted"], body["skipped"], body["failed"]) == (
        total,
        total,
        0,
        0,
    ), body
    assert journal_left == 0
    assert outcomes == Counter({(orthanc_id, "converted"): 1 for orthanc_id in crcs})
    # Replaced once: each instance's converted file was posted by one worker, whose log says
    # so, or, when a kill came between the post and that line, by the worker that settled it.
    logs = await asyncio.to_thread(read_logs, tmp_path)
    replaced = Counter(REPLACED.findall(logs))
    finished = Counter(FINISHED.findall(logs))
    assert max(replaced.values()) == 1, [i for i, n in replaced.items() if n > 1]
    assert set(replaced) | set(finished) == set(crcs)
