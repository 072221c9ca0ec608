"""One job, one runner: two replicas on one PostgreSQL that start at once with an unfinished job
never both run it (each with its own journal folder, as on two machines). One study, one
worker: two jobs over one study take turns."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import PIPE, Popen
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from dicomgate.conversions import queue as queue_module
from dicomgate.conversions import run as run_module
from dicomgate.conversions.journals import DatabaseJournal
from dicomgate.conversions.locks import run_locks
from dicomgate.conversions.models import ConversionJob
from dicomgate.conversions.plan import InstanceResult, make_selection
from dicomgate.conversions.queue import STUDY_TASK
from dicomgate.conversions.repository import create_job
from dicomgate.db import create_engine, create_sessionmaker, session_scope
from dicomgate.migrations import upgrade_database
from dicomgate.settings import Settings
from tests.conversions.helpers import make_settings
from tests.conversions.test_background import (
    STUDY,
    assert_converted,
    job_state,
    running_app,
    store_study,
    wait_completed,
)
from tests.databases import fresh_database
from tests.dicomgate_process import start_dicomgate, stop_dicomgate
from tests.orthanc_process import OrthancProcess

INSTANCES = 60
# A killed worker is taken for dead within seconds (the defaults: 5 s heartbeats, 30 s).
FAST_STALL = {"DICOMGATE_WORKER_HEARTBEAT": "1", "DICOMGATE_WORKER_STALLED_AFTER": "4"}


async def test_a_job_lock_is_held_by_one_connection_until_it_closes(tmp_path: Path) -> None:
    async with fresh_database("postgresql", tmp_path, prefix="locks") as url:
        engine = create_engine(url)
        try:
            async with run_locks(engine) as first, run_locks(engine) as second:
                assert await first.try_job(7)
                assert not await second.try_job(7)
                assert await second.try_job(8)  # another job is free
                assert await first.try_study("1.2.3")
                assert not await second.try_study("1.2.3")
                await first.release_study("1.2.3")
                assert await second.try_study("1.2.3")
            async with run_locks(engine) as third:  # both runs ended: everything is free
                assert await third.try_job(7)
                assert await third.try_study("1.2.3")
        finally:
            await engine.dispose()


def _wait_done(url: str, job_id: int) -> dict[str, object]:
    body: dict[str, object] = {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/api/ris/conversions/{job_id}/", timeout=30).json()
        if body["state"] not in ("pending", "running", "interrupted"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end: {body}")


@pytest.mark.postgres
async def test_two_replicas_starting_at_once_run_an_unfinished_job_once(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    crcs = await asyncio.to_thread(store_study, clean_orthanc, INSTANCES)
    async with fresh_database("postgresql", tmp_path, prefix="onerunner") as url:
        settings = Settings(orthanc_url=clean_orthanc.url, database_url=url)
        await asyncio.to_thread(upgrade_database, settings)
        engine = create_engine(url)
        async with session_scope(create_sessionmaker(engine)) as session:
            job = await create_job(session, selection=make_selection(study=STUDY), dry_run=False)
            job.state = "running"  # as a replica killed mid-run leaves it
            job_id = job.id
        await engine.dispose()

        logs = [tmp_path / "a.log", tmp_path / "b.log"]

        def replica(n: int) -> tuple[object, str]:
            folder = tmp_path / f"replica-{n}"
            folder.mkdir()
            env = {
                "DICOMGATE_DATABASE_URL": url,
                "DICOMGATE_JOURNAL_DIR": str(folder / "journal"),  # one per machine
                "DICOMGATE_LOG_LEVEL": "INFO",
                "DICOMGATE_WORKERS": "2",
            }
            with logs[n].open("wb") as log:
                return start_dicomgate(clean_orthanc.url, folder, env=env, stderr=log)

        with ThreadPoolExecutor(2) as starting:  # both start at once
            started = list(starting.map(replica, range(2)))
        try:
            body = await asyncio.to_thread(_wait_done, started[0][1], job_id)
        finally:
            for proc, _ in started:
                stop_dicomgate(proc)  # type: ignore[arg-type]

    replaced = [log.read_text().count("Replaced instance") for log in logs]
    assert sum(replaced) == INSTANCES, f"replacements per replica: {replaced}"
    assert 0 in replaced, f"both replicas ran the job: {replaced}"
    assert body["state"] == "completed", body
    assert (body["converted"], body["skipped"], body["failed"]) == (INSTANCES, 0, 0), body
    await asyncio.to_thread(assert_converted, clean_orthanc, crcs)


def _convert(orthanc_url: str, database_url: str, folder: Path, *selector: str) -> Popen[str]:
    folder.mkdir()
    env = {
        **os.environ,
        "DICOMGATE_ORTHANC_URL": orthanc_url,
        "DICOMGATE_DATABASE_URL": database_url,
        "DICOMGATE_JOURNAL_DIR": str(folder / "journal"),  # one per machine
        "DICOMGATE_WORKERS": "2",
        **FAST_STALL,
    }
    command = [sys.executable, "-m", "dicomgate.cli", "convert-to-htj2k", *selector]
    return Popen(
        [*command, "--concurrency", "2"], cwd=folder, env=env, stdout=PIPE, stderr=PIPE, text=True
    )


@pytest.mark.postgres
async def test_two_jobs_over_one_study_never_convert_it_at_once(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    """Two machines, two jobs that both cover one study: the study's lock makes them take
    turns, so each instance is replaced once (the second job finds it HTJ2K)."""
    crcs = await asyncio.to_thread(store_study, clean_orthanc, INSTANCES)
    async with fresh_database("postgresql", tmp_path, prefix="onestudy") as url:
        settings = Settings(orthanc_url=clean_orthanc.url, database_url=url)
        await asyncio.to_thread(upgrade_database, settings)
        runs = [
            _convert(clean_orthanc.url, url, tmp_path / "a", "--all"),
            _convert(clean_orthanc.url, url, tmp_path / "b", "--study", STUDY),
        ]
        outputs = [await asyncio.to_thread(run.communicate, timeout=300) for run in runs]
        async with session_scope(create_sessionmaker(engine := create_engine(url))) as session:
            jobs = (await session.scalars(select(ConversionJob).order_by(ConversionJob.id))).all()
            counts = [(j.state, j.converted, j.skipped_by_reason, j.failed) for j in jobs]
        await engine.dispose()

    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, f"{out}\n{err[-3000:]}"
    replaced = [err.count("Replaced instance") for _, err in outputs]
    assert sum(replaced) == INSTANCES, f"replacements per job: {replaced}"
    assert sorted(c[1] for c in counts) == sorted(replaced)
    for state, converted, skipped, failed in counts:
        assert state == "completed" and failed == 0
        assert converted + skipped.get("already_htj2k", 0) == INSTANCES, counts
    await asyncio.to_thread(assert_converted, clean_orthanc, crcs)


@pytest.mark.postgres
async def test_a_killed_runners_job_goes_on_in_a_live_replica(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    """A CLI run on one machine is killed (kill -9) mid-job; a replica already serving on
    another notices within DICOMGATE_RESUME_CONVERSIONS_EVERY, settles what the dead run left
    half-done in the study and finishes the job, with exact counters."""
    crcs = await asyncio.to_thread(store_study, clean_orthanc, INSTANCES)
    async with fresh_database("postgresql", tmp_path, prefix="takeover") as url:
        settings = Settings(orthanc_url=clean_orthanc.url, database_url=url)
        await asyncio.to_thread(upgrade_database, settings)
        (tmp_path / "replica").mkdir()
        replica, replica_url = await asyncio.to_thread(
            start_dicomgate,
            clean_orthanc.url,
            tmp_path / "replica",
            env={
                "DICOMGATE_DATABASE_URL": url,
                "DICOMGATE_RESUME_CONVERSIONS_EVERY": "1",
                **FAST_STALL,
            },
        )
        try:
            cli = _convert(clean_orthanc.url, url, tmp_path / "cli", "--study", STUDY)
            assert cli.stderr is not None
            for line in cli.stderr:  # the run is replacing: kill it now
                if "Replaced instance" in line:
                    break
            cli.kill()
            cli.wait()
            body = await asyncio.to_thread(_wait_done, replica_url, 1)
            journal_left = await DatabaseJournal(engine := create_engine(url)).count_pending()
            await engine.dispose()
        finally:
            stop_dicomgate(replica)

    assert body["state"] == "completed", body
    assert (body["converted"], body["skipped"], body["failed"]) == (INSTANCES, 0, 0), body
    assert journal_left == 0
    await asyncio.to_thread(assert_converted, clean_orthanc, crcs)


@pytest.mark.postgres
async def test_a_stopping_replica_queues_its_study_again_and_the_job_goes_on(
    clean_orthanc: OrthancProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the task queue a replica stopping mid-study neither ends nor interrupts the job (other
    workers may be converting its other studies): after its grace the study is cut short (safe:
    the journal) and queued again, and the next worker to start finishes it, counting exactly."""
    crcs = await asyncio.to_thread(store_study, clean_orthanc, 3)
    reached = asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> InstanceResult:
        reached.set()
        await asyncio.Event().wait()
        raise AssertionError("never reached")

    monkeypatch.setattr(run_module, "convert_instance", held)
    monkeypatch.setattr(queue_module, "SHUTDOWN_GRACE", 1.0)
    async with fresh_database("postgresql", tmp_path, prefix="shutdown") as url:
        settings = await asyncio.to_thread(make_settings, clean_orthanc, tmp_path, database_url=url)
        engine = create_engine(url)
        async with session_scope(create_sessionmaker(engine)) as session:
            job = await create_job(session, selection=make_selection(study=STUDY), dry_run=False)
            job_id = job.id
        async with running_app(settings):  # resumes it at start: planned, then its study held
            await asyncio.wait_for(reached.wait(), timeout=60)
        state = await job_state(settings, job_id)
        async with engine.connect() as conn:
            query = "SELECT status::text FROM procrastinate_jobs WHERE task_name = :task"
            tasks = (await conn.execute(text(query), {"task": STUDY_TASK})).scalars().all()
        monkeypatch.undo()
        async with running_app(settings) as client:
            body = await wait_completed(client, job_id)
        await engine.dispose()

    assert (state, tasks) == ("running", ["todo"])
    assert (body["converted"], body["skipped"], body["failed"]) == (3, 0, 0)
    await asyncio.to_thread(assert_converted, clean_orthanc, crcs)
