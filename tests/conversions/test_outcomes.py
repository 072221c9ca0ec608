"""Outcomes are written with group commit: those that finish together share one transaction,
then their journal entries are dropped together; a failed write drops nothing and reaches every
worker whose outcome was in it."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, event, func, select

from dicomgate.conversions.journal import JournalEntry
from dicomgate.conversions.journals import Journal
from dicomgate.conversions.models import ConversionJob, ConversionOutcome
from dicomgate.conversions.outcomes import OutcomeWriter
from dicomgate.conversions.plan import InstanceRef, InstanceResult, make_selection
from dicomgate.conversions.service import start_or_resume
from dicomgate.db import session_scope
from dicomgate.errors import ConversionJobNotFound
from dicomgate.kit.hashing import sha256
from dicomgate.runtime import Runtime

STUDY = "1.2.826.0.1.3680043.10.9.7"


def _ref(n: int) -> InstanceRef:
    return InstanceRef(
        orthanc_id=f"0000000{n}-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd",
        sop_instance_uid=f"{STUDY}.{n}",
        study_instance_uid=STUDY,
        file_size=1000,
    )


async def _journaled(journal: Journal, ref: InstanceRef) -> None:
    original = f"original {ref.orthanc_id}".encode()
    await journal.record(
        JournalEntry(
            orthanc_id=ref.orthanc_id,
            study_instance_uid=STUDY,
            sop_instance_uid=ref.sop_instance_uid,
            original_sha256=sha256(original),
            original_size=len(original),
            original_frame_crc32=(1,),
            converted_sha256=sha256(b"converted"),
            converted_size=9,
        ),
        original,
    )


async def _job(runtime: Runtime) -> int:
    selection = make_selection(study=STUDY)
    return await start_or_resume(runtime, selection=selection, dry_run=False, resume=False)


def _results() -> list[InstanceResult]:
    converted = [InstanceResult(_ref(n), "converted", None, 1000, 300) for n in range(4)]
    return [*converted, InstanceResult(_ref(4), "skipped", "already_htj2k", 500, 500)]


async def test_outcomes_that_finish_together_share_one_transaction(
    journal_runtime: Runtime, journal: Journal
) -> None:
    job_id = await _job(journal_runtime)
    results = _results()
    for result in results[:4]:
        await _journaled(journal, result.ref)
    commits = []
    listener = lambda _conn: commits.append(1)  # noqa: E731
    event.listen(journal_runtime.engine.sync_engine, "commit", listener)
    try:
        writer = OutcomeWriter(journal_runtime, journal, job_id)
        cancels = await asyncio.gather(*(writer.submit(result) for result in results))
    finally:
        event.remove(journal_runtime.engine.sync_engine, "commit", listener)

    assert cancels == [False] * 5
    # One transaction for the five outcomes, one for the four journal entries on PostgreSQL
    # (the folder journal removes files, no transaction): instead of one or two per outcome.
    assert len(commits) == (2 if journal.shared else 1)
    assert await journal.count_pending() == 0
    async with session_scope(journal_runtime.sessions) as session:
        job = await session.get_one(ConversionJob, job_id)
        assert (job.converted, job.skipped, job.failed) == (4, 1, 0)
        assert (job.bytes_before, job.bytes_after) == (4500, 1700)
        assert job.skipped_by_reason == {"already_htj2k": 1}
        recorded = await session.scalar(
            select(func.count()).where(ConversionOutcome.job_id == job_id)
        )
        assert recorded == 5


async def test_a_write_that_fails_drops_no_journal_entry_and_reaches_every_waiter(
    journal_runtime: Runtime, journal: Journal
) -> None:
    job_id = await _job(journal_runtime)
    results = _results()[:4]
    for result in results:
        await _journaled(journal, result.ref)
    async with session_scope(journal_runtime.sessions) as session:
        await session.execute(delete(ConversionJob).where(ConversionJob.id == job_id))

    writer = OutcomeWriter(journal_runtime, journal, job_id)
    answers = await asyncio.gather(
        *(writer.submit(result) for result in results), return_exceptions=True
    )

    assert [type(a) for a in answers] == [ConversionJobNotFound] * 4
    # Not recorded, so every original stays: recovery settles each instance from its entry.
    assert sorted(e.orthanc_id for e in await journal.entries()) == sorted(
        r.ref.orthanc_id for r in results
    )


async def test_a_worker_that_hands_its_outcome_over_learns_of_a_cancel(
    journal_runtime: Runtime, journal: Journal
) -> None:
    job_id = await _job(journal_runtime)
    async with session_scope(journal_runtime.sessions) as session:
        job = await session.get_one(ConversionJob, job_id)
        job.cancel_requested = True
    writer = OutcomeWriter(journal_runtime, journal, job_id)
    written = writer.submit(_results()[4])
    assert not written.done()  # handed over: the worker goes on meanwhile
    assert await written is True
