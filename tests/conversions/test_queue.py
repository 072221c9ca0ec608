"""Conversion jobs on the task queue (PostgreSQL): one task per study, the job ended by its last
study, every step safe to run again, cancel and Orthanc's failure handled across workers."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from dicomgate.app import create_app
from dicomgate.conversions import studies
from dicomgate.conversions.liveness import dead_workers_tasks
from dicomgate.conversions.models import ConversionJob, ConversionJobStudy
from dicomgate.conversions.plan import InstanceResult, make_selection
from dicomgate.conversions.queue import STUDY_TASK, QueuedJobs, open_queue
from dicomgate.conversions.repository import create_job
from dicomgate.conversions.service import request_cancel
from dicomgate.db import session_scope
from dicomgate.runtime import Runtime, open_runtime
from tests.builders import make_dataset, to_bytes
from tests.conversions.helpers import decoded_crc32s, make_settings
from tests.conversions.test_background import assert_converted
from tests.databases import fresh_database
from tests.orthanc_process import OrthancProcess

pytestmark = pytest.mark.postgres

STUDIES = [f"1.2.826.0.1.3680043.10.9.{200 + n}" for n in range(3)]
PER_STUDY = 4


def store_studies(orthanc: OrthancProcess) -> dict[str, tuple[int, ...]]:
    crcs = {}
    for study in STUDIES:
        for n in range(PER_STUDY):
            data = to_bytes(make_dataset(rows=32, columns=32, study_uid=study, instance_number=n))
            crcs[orthanc.store(data)["ID"]] = decoded_crc32s(data)
    return crcs


def stored_syntaxes(orthanc: OrthancProcess, study: str) -> list[str]:
    query = {"Level": "Instance", "Query": {"StudyInstanceUID": study}}
    ids = httpx.post(f"{orthanc.url}/tools/find", json=query).json()
    return [
        httpx.get(f"{orthanc.url}/instances/{i}/header?simplify").json()["TransferSyntaxUID"]
        for i in ids
    ]


@asynccontextmanager
async def pg_runtime(orthanc: OrthancProcess, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with fresh_database("postgresql", tmp_path, prefix="queue") as url:
        settings = await asyncio.to_thread(make_settings, orthanc, tmp_path, database_url=url)
        async with open_runtime(settings) as runtime:
            yield runtime


async def new_job(runtime: Runtime) -> int:
    async with session_scope(runtime.sessions) as session:
        job = await create_job(session, selection=make_selection(all_studies=True), dry_run=False)
        return job.id


async def read_job(runtime: Runtime, job_id: int) -> ConversionJob:
    async with session_scope(runtime.sessions) as session:
        job = await session.get(ConversionJob, job_id)
        assert job is not None
        session.expunge(job)
        return job


async def study_states(runtime: Runtime, job_id: int) -> dict[str, str]:
    async with session_scope(runtime.sessions) as session:
        rows = await session.scalars(
            select(ConversionJobStudy).where(ConversionJobStudy.job_id == job_id)
        )
        return {row.study_instance_uid: row.state for row in rows}


async def wait_ended(runtime: Runtime, job_id: int) -> ConversionJob:
    for _ in range(1200):
        job = await read_job(runtime, job_id)
        if job.state in ("completed", "cancelled", "failed"):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end: {job.state}")


async def live_tasks(runtime: Runtime) -> int:
    async with runtime.engine.connect() as conn:
        query = "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        return int((await conn.execute(text(query))).scalar_one())


async def test_a_job_runs_as_one_task_per_study_and_its_last_study_ends_it(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    crcs = await asyncio.to_thread(store_studies, clean_orthanc)
    async with pg_runtime(clean_orthanc, tmp_path) as runtime, open_queue(runtime) as queue:
        job_id = await new_job(runtime)
        assert await queue.start_job(job_id, concurrency=2)
        assert not await queue.start_job(job_id, concurrency=2)  # its queueing lock
        queue.run_worker(concurrency=2)
        job = await wait_ended(runtime, job_id)
        assert await study_states(runtime, job_id) == dict.fromkeys(STUDIES, "done")
        assert await live_tasks(runtime) == 0
    total = len(STUDIES) * PER_STUDY
    assert (job.state, job.instances_total, job.converted, job.skipped, job.failed) == (
        "completed",
        total,
        total,
        0,
        0,
    )
    assert job.finished_at is not None and job.elapsed > 0
    await asyncio.to_thread(assert_converted, clean_orthanc, crcs)


async def plan(runtime: Runtime, job_id: int) -> list[str]:
    """Plan the job with no queue: the studies it defers, for the test to convert itself."""
    deferred: list[str] = []

    async def defer(study: str) -> None:
        deferred.append(study)

    await studies.plan_job(runtime, job_id, defer_study=defer)
    return deferred


async def test_planning_or_converting_a_study_again_redoes_nothing(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    """A planner retried (its worker died) defers the same studies and counts nothing twice;
    a study task run again once its study is done returns at once."""
    await asyncio.to_thread(store_studies, clean_orthanc)
    async with pg_runtime(clean_orthanc, tmp_path) as runtime:
        job_id = await new_job(runtime)
        deferred = await plan(runtime, job_id) + await plan(runtime, job_id)
        assert deferred == STUDIES + STUDIES  # deduplicated by the tasks' queueing lock
        assert (await read_job(runtime, job_id)).instances_total == len(STUDIES) * PER_STUDY

        await studies.convert_study(runtime, job_id, STUDIES[0], concurrency=2)
        once = await read_job(runtime, job_id)
        await studies.convert_study(runtime, job_id, STUDIES[0], concurrency=2)
        again = await read_job(runtime, job_id)
        assert (once.converted, again.converted) == (PER_STUDY, PER_STUDY)
        assert (again.state, (await study_states(runtime, job_id))[STUDIES[0]]) == (
            "running",
            "done",
        )
        for study in STUDIES[1:]:
            await studies.convert_study(runtime, job_id, study, concurrency=2)
        done = await read_job(runtime, job_id)
        deferred = await plan(runtime, job_id)  # ended: nothing to plan
    assert (done.state, done.converted, deferred) == ("completed", len(STUDIES) * PER_STUDY, [])


async def test_cancel_leaves_the_queued_studies_untouched(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    await asyncio.to_thread(store_studies, clean_orthanc)
    async with pg_runtime(clean_orthanc, tmp_path) as runtime:
        job_id = await new_job(runtime)

        async def defer(study: str) -> None:
            return None

        await studies.plan_job(runtime, job_id, defer_study=defer)
        await studies.convert_study(runtime, job_id, STUDIES[0], concurrency=2)
        async with session_scope(runtime.sessions) as session:
            await request_cancel(session, job_id)
        for study in STUDIES[1:]:
            await studies.convert_study(runtime, job_id, study, concurrency=2)
        job = await read_job(runtime, job_id)
        states = await study_states(runtime, job_id)
    assert (job.state, job.converted) == ("cancelled", PER_STUDY)
    assert states == {STUDIES[0]: "done", STUDIES[1]: "cancelled", STUDIES[2]: "cancelled"}
    served = await asyncio.to_thread(stored_syntaxes, clean_orthanc, STUDIES[1])
    assert served == ["1.2.840.10008.1.2.1"] * PER_STUDY  # still uncompressed


async def test_orthanc_down_interrupts_the_job_and_a_sweep_resumes_it(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    crcs = await asyncio.to_thread(store_studies, clean_orthanc)
    async with pg_runtime(clean_orthanc, tmp_path) as runtime, open_queue(runtime) as queue:
        job_id = await new_job(runtime)
        await asyncio.to_thread(clean_orthanc.stop)
        try:
            await studies.plan_job(runtime, job_id, defer_study=_never)
            job = await read_job(runtime, job_id)
        finally:
            await asyncio.to_thread(clean_orthanc.start)
        assert job.state == "interrupted"
        assert "Stopped:" in job.errors[-1] and "No instance is missing" in job.errors[-1]

        await queue.sweep()  # no task of it is left: planned again
        queue.run_worker(concurrency=1)
        ended = await wait_ended(runtime, job_id)
    assert (ended.state, ended.converted) == ("completed", len(STUDIES) * PER_STUDY)
    await asyncio.to_thread(assert_converted, clean_orthanc, crcs)


async def _never(study: str) -> None:
    raise AssertionError("nothing is deferred while Orthanc is down")


async def test_resume_queues_only_jobs_without_a_task(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    """Every replica resumes at start: a job that has a task waiting is not queued twice."""
    async with pg_runtime(clean_orthanc, tmp_path) as runtime, open_queue(runtime) as queue:
        first, second = await new_job(runtime), await new_job(runtime)
        await queue.start_job(first, concurrency=1)
        assert await queue.resume_unfinished() == [second]
        assert await queue.resume_unfinished() == []
        assert await queue.live_job_ids() == {first, second}
        assert isinstance(queue, QueuedJobs)


def test_the_worker_command_needs_postgresql(orthanc: OrthancProcess, tmp_path: Path) -> None:
    settings = make_settings(orthanc, tmp_path)
    env = {
        **os.environ,
        "DICOMGATE_ORTHANC_URL": orthanc.url,
        "DICOMGATE_DATABASE_URL": settings.database_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "dicomgate.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "`dicomgate worker` needs PostgreSQL" in done.stderr


INSTANCES_KILLED_MID_STUDY = 120


async def test_a_killed_workers_task_is_known_dead_at_once(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    """kill -9 a `dicomgate worker` mid-study: its task is found dead right away (its liveness
    lock went with its connections), not after DICOMGATE_WORKER_STALLED_AFTER (30 s here)."""
    # Enough work that the study is still being converted when the worker is killed.
    for n in range(INSTANCES_KILLED_MID_STUDY):
        data = to_bytes(
            make_dataset(rows=256, columns=256, study_uid=STUDIES[0], instance_number=n)
        )
        await asyncio.to_thread(clean_orthanc.store, data)
    async with pg_runtime(clean_orthanc, tmp_path) as runtime, open_queue(runtime) as queue:
        env = {
            **os.environ,
            "DICOMGATE_ORTHANC_URL": clean_orthanc.url,
            "DICOMGATE_DATABASE_URL": runtime.settings.database_url,
            "DICOMGATE_WORKERS": "1",
        }
        worker = await asyncio.to_thread(
            subprocess.Popen, [sys.executable, "-m", "dicomgate.cli", "worker"], env=env
        )
        try:
            job_id = await new_job(runtime)
            await queue.start_job(job_id, concurrency=1)
            doing = await _wait_doing(runtime)
            assert await dead_workers_tasks(runtime.engine) == []  # alive: its lock is held
        finally:
            worker.kill()
            await asyncio.to_thread(worker.wait)
        # PostgreSQL frees the lock as soon as it sees the connection gone: well within the
        # stalled timeout (30 s), though not always by the next query.
        found: list[int] = []
        for _ in range(50):
            if found := await dead_workers_tasks(runtime.engine):
                break
            await asyncio.sleep(0.1)
        assert found == [doing]
        assert await queue.retry_stalled() == 1
        queue.run_worker(concurrency=1)
        job = await wait_ended(runtime, job_id)
    assert (job.state, job.converted) == ("completed", INSTANCES_KILLED_MID_STUDY)


async def _wait_doing(runtime: Runtime) -> int:
    """The ID of the first study task a worker is doing (a convert_study, past planning)."""
    for _ in range(600):
        async with runtime.engine.connect() as conn:
            found = (
                await conn.execute(
                    text(
                        "SELECT id FROM procrastinate_jobs WHERE status = 'doing' "
                        "AND task_name = :task"
                    ),
                    {"task": STUDY_TASK},
                )
            ).scalar()
        if found is not None:
            return int(found)
        await asyncio.sleep(0.1)
    raise AssertionError("no worker took the study")


async def test_a_job_the_queue_refuses_is_a_503_and_waits_interrupted_for_the_sweep(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    """POST a job while PostgreSQL refuses the queue's insert (its table renamed away): the
    answer is a 503 naming the job, never a 202 for a job nothing runs; the job is interrupted
    with the reason, and once the queue is back a sweep queues it and a worker converts it."""
    crcs = await asyncio.to_thread(store_studies, clean_orthanc)
    async with fresh_database("postgresql", tmp_path, prefix="refused") as url:
        settings = (
            await asyncio.to_thread(make_settings, clean_orthanc, tmp_path, database_url=url)
        ).model_copy(
            update={
                "in_process_worker": False,
                "resume_conversions_on_start": False,
                "resume_conversions_every": 0.0,
            }
        )
        app = create_app(settings)
        responses = app.openapi()["paths"]["/api/ris/conversions/"]["post"]["responses"]
        assert "ConversionQueueUnavailable" in responses["503"]["description"]
        async with app.router.lifespan_context(app):
            runtime: Runtime = app.state.runtime
            queue: QueuedJobs = app.state.conversion_jobs
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await _rename_queue_table(runtime, "procrastinate_jobs", "procrastinate_jobs_away")
                try:
                    answer = await client.post("/api/ris/conversions/", json={"all": True})
                finally:
                    await _rename_queue_table(
                        runtime, "procrastinate_jobs_away", "procrastinate_jobs"
                    )
                (listed,) = (await client.get("/api/ris/conversions/")).json()["jobs"]
            job_id = listed["id"]
            reason = 'relation "procrastinate_jobs" does not exist'
            assert answer.status_code == 503
            assert answer.json() == {
                "success": False,
                "type": "ConversionQueueUnavailable",
                "error": f"Conversion job {job_id} was created, but the task queue could not "
                f"take it ({reason}). It is marked interrupted and queued again by the next "
                "sweep of unfinished jobs; there is no need to start it again.",
            }
            assert (listed["state"], listed["converted"]) == ("interrupted", 0)
            assert listed["errors"] == [
                f"Not queued: the task queue could not take the job ({reason}). Nothing of it "
                "ran; the next sweep of unfinished jobs (or the next start of a dicomgate "
                "process) queues it again."
            ]
            assert await live_tasks(runtime) == 0

            await queue.sweep()
            assert await queue.live_job_ids() == {job_id}
            queue.run_worker(concurrency=1)
            job = await wait_ended(runtime, job_id)
    total = len(STUDIES) * PER_STUDY
    assert (job.state, job.converted, job.skipped, job.failed) == ("completed", total, 0, 0)
    await asyncio.to_thread(assert_converted, clean_orthanc, crcs)


async def _rename_queue_table(runtime: Runtime, old: str, new: str) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def delete_study(orthanc: OrthancProcess, study: str) -> None:
    query = {"Level": "Study", "Query": {"StudyInstanceUID": study}}
    (orthanc_id,) = httpx.post(f"{orthanc.url}/tools/find", json=query).json()
    httpx.delete(f"{orthanc.url}/studies/{orthanc_id}").raise_for_status()


async def study_rows(runtime: Runtime, job_id: int) -> dict[str, tuple[str, int, int]]:
    """Each study of a job: (state, instances it covers, attempts)."""
    async with session_scope(runtime.sessions) as session:
        rows = await session.scalars(
            select(ConversionJobStudy).where(ConversionJobStudy.job_id == job_id)
        )
        return {r.study_instance_uid: (r.state, r.instances_total, r.attempts) for r in rows}


async def test_a_study_deleted_after_planning_ends_done_with_nothing_to_count(
    clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    """A study deleted from Orthanc between planning and its task: the task finds nothing to
    do, the study is done covering 0 instances, and the job completes with exact counts."""
    crcs = await asyncio.to_thread(store_studies, clean_orthanc)
    gone = STUDIES[1]
    async with pg_runtime(clean_orthanc, tmp_path) as runtime:
        job_id = await new_job(runtime)
        deferred = await plan(runtime, job_id)
        assert (await read_job(runtime, job_id)).instances_total == len(STUDIES) * PER_STUDY
        await asyncio.to_thread(delete_study, clean_orthanc, gone)
        for study in deferred:
            await studies.convert_study(runtime, job_id, study, concurrency=2)
        job = await read_job(runtime, job_id)
        rows = await study_rows(runtime, job_id)
    kept = (len(STUDIES) - 1) * PER_STUDY
    assert deferred == STUDIES
    assert (job.state, job.instances_total, job.converted, job.skipped, job.failed) == (
        "completed",
        kept,
        kept,
        0,
        0,
    )
    assert (job.errors, job.skipped_by_reason) == ([], {})
    assert rows == {
        STUDIES[0]: ("done", PER_STUDY, 1),
        gone: ("done", 0, 1),
        STUDIES[2]: ("done", PER_STUDY, 1),
    }
    deleted = list(crcs)[PER_STUDY : 2 * PER_STUDY]  # stored study by study, in STUDIES' order
    left = {i: c for i, c in crcs.items() if i not in deleted}
    await asyncio.to_thread(assert_converted, clean_orthanc, left)  # exactly these, HTJ2K


class _StopOrthancAfterFirst:
    """A progress sink that stops the real Orthanc once the first instance is done."""

    def __init__(self, orthanc: OrthancProcess) -> None:
        self.orthanc = orthanc
        self.done: list[str] = []

    def started(self, *, studies: int, instances: int, already_done: int) -> None:
        return None

    def study(self, study_instance_uid: str) -> None:
        return None

    def advanced(self, result: InstanceResult) -> None:
        self.done.append(result.outcome)
        if len(self.done) == 1:
            self.orthanc.stop()  # blocks the loop a moment: no instance is in flight


@pytest.mark.parametrize("concurrency", [1, 2], ids=["between-instances", "one-in-flight"])
async def test_orthanc_failing_mid_study_interrupts_it_queued_and_a_sweep_finishes_it(
    clean_orthanc: OrthancProcess, tmp_path: Path, concurrency: int
) -> None:
    """Orthanc stops after a study task's first instance: the job is interrupted with the
    reason, the study stays queued, and once Orthanc is back a sweep and a worker finish the
    job: every instance converted once (counted once), HTJ2K, pixels equal, none lost."""
    crcs = await asyncio.to_thread(store_studies, clean_orthanc)
    first = STUDIES[0]
    async with pg_runtime(clean_orthanc, tmp_path) as runtime, open_queue(runtime) as queue:
        job_id = await new_job(runtime)
        await plan(runtime, job_id)
        sink = _StopOrthancAfterFirst(clean_orthanc)
        try:
            await studies.convert_study(
                runtime, job_id, first, concurrency=concurrency, progress=sink
            )
            stopped = await read_job(runtime, job_id)
            rows = await study_rows(runtime, job_id)
        finally:
            await asyncio.to_thread(clean_orthanc.start)
        # One worker: stopped between two instances. Two: the other one's instance was in
        # flight (done just before, or cut anywhere: download, delete, re-post, verify).
        assert sink.done == ["converted"] * (1 if concurrency == 1 else len(sink.done))
        assert len(sink.done) in ((1,) if concurrency == 1 else (1, 2))
        assert (stopped.state, stopped.converted, stopped.skipped, stopped.failed) == (
            "interrupted",
            len(sink.done),
            0,
            0,
        )
        (message,) = stopped.errors
        if concurrency == 1:
            assert message.startswith(
                "Stopped: Orthanc is unreachable (GET /instances/{id}/header)"
            )
        assert re.fullmatch(
            r"Stopped: Orthanc is unreachable \((GET|POST|DELETE|PUT) /[^)]+\)\. No instance is "
            r"missing: unfinished replacements are kept in the journal and settled when the job "
            r"resumes\.",
            message,
        ), message
        assert rows == {
            first: ("queued", PER_STUDY, 1),
            STUDIES[1]: ("queued", PER_STUDY, 0),
            STUDIES[2]: ("queued", PER_STUDY, 0),
        }

        await queue.sweep()  # no task of it is left: planned again
        assert await queue.live_job_ids() == {job_id}
        queue.run_worker(concurrency=2)
        ended = await wait_ended(runtime, job_id)
        rows = await study_rows(runtime, job_id)
        assert await live_tasks(runtime) == 0
    total = len(STUDIES) * PER_STUDY
    assert (ended.state, ended.instances_total, ended.converted, ended.skipped, ended.failed) == (
        "completed",
        total,
        total,
        0,
        0,
    )
    assert ended.errors == stopped.errors  # nothing failed after the resume
    assert rows == {
        first: ("done", PER_STUDY, 2),
        STUDIES[1]: ("done", PER_STUDY, 1),
        STUDIES[2]: ("done", PER_STUDY, 1),
    }
    served = await asyncio.to_thread(
        lambda: sorted(httpx.get(f"{clean_orthanc.url}/instances").json())
    )
    assert served == sorted(crcs)  # none lost, none duplicated
    await asyncio.to_thread(assert_converted, clean_orthanc, crcs)
