"""Resuming a job: failed instances are retried (attempts counted), and a replacement a crash
left unrecorded is counted once, as converted by the job that made it."""

from __future__ import annotations

import dataclasses
from io import BytesIO

import pydicom
import pytest
from sqlalchemy import select

from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from dicomgate.codec.transcode import TranscodeOptions
from dicomgate.conversions.commands import format_summary
from dicomgate.conversions.journals import open_journal
from dicomgate.conversions.models import ConversionJob, ConversionOutcome
from dicomgate.conversions.plan import InstanceRef, make_selection, select_studies, study_instances
from dicomgate.conversions.repository import record_outcome
from dicomgate.conversions.run import convert_instance
from dicomgate.conversions.service import run_job, start_or_resume
from dicomgate.db import session_scope
from dicomgate.runtime import Runtime
from tests.builders import make_dataset, to_bytes
from tests.conversions.helpers import served_file
from tests.orthanc_process import OrthancProcess

STUDY = "1.2.826.0.1.3680043.10.9.400"


@pytest.fixture
def runtime(journal_runtime: Runtime) -> Runtime:
    """Every test here on both journals: SQLite's folder, PostgreSQL's table."""
    return journal_runtime


def _store(orthanc: OrthancProcess, *, small: int, large: int) -> dict[str, int]:
    """``small`` 16×16 and ``large`` 32×32 images in one study; Orthanc ID → pixel count."""
    pixels: dict[str, int] = {}
    for n, side in enumerate([16] * small + [32] * large):
        data = to_bytes(make_dataset(rows=side, columns=side, study_uid=STUDY, instance_number=n))
        pixels[orthanc.store(data)["ID"]] = side * side
    return pixels


async def _job(runtime: Runtime) -> int:
    selection = make_selection(study=STUDY)
    return await start_or_resume(runtime, selection=selection, dry_run=False, resume=False)


async def _interrupt(runtime: Runtime, job_id: int) -> None:
    """Leave the job as a crash or an unreachable Orthanc would: unfinished, resumable."""
    async with session_scope(runtime.sessions) as session:
        job = await session.get(ConversionJob, job_id)
        assert job is not None
        job.state = "interrupted"


async def _outcomes(runtime: Runtime, job_id: int) -> dict[str, tuple[str, int]]:
    async with session_scope(runtime.sessions) as session:
        rows = await session.scalars(
            select(ConversionOutcome).where(ConversionOutcome.job_id == job_id)
        )
        return {r.orthanc_id: (r.outcome, r.attempts) for r in rows}


async def _job_row(runtime: Runtime, job_id: int) -> ConversionJob:
    async with session_scope(runtime.sessions) as session:
        job = await session.get(ConversionJob, job_id)
        assert job is not None
        return job


class TestFailedInstancesAreRetried:
    async def test_resume_retries_failures_only_and_counts_attempts(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        pixels = _store(conv_orthanc, small=3, large=2)
        large = {i for i, n in pixels.items() if n > 300}
        # A pixel cap below the large images: they fail (ImageTooLarge), the rest converts.
        capped = dataclasses.replace(
            runtime, settings=runtime.settings.model_copy(update={"max_pixels": 300})
        )
        job_id = await _job(runtime)

        first = await run_job(capped, job_id, concurrency=2)
        assert (first.converted, first.failed) == (3, 2)
        await _interrupt(runtime, job_id)

        second = await run_job(capped, job_id, concurrency=2)  # still capped: fails again
        assert second.instances_this_run == 2  # the converted ones are not redone
        assert second.retried == {"failed": 2}
        assert (second.converted, second.failed) == (3, 2)
        assert any("(attempt 2)" in e for e in second.errors)
        await _interrupt(runtime, job_id)

        third = await run_job(runtime, job_id, concurrency=2)  # the cap lifted: converts

        assert third.state == "completed"
        assert third.instances_this_run == 2
        assert third.retried == {"converted": 2}
        assert (third.converted, third.failed, third.skipped) == (5, 0, 0)
        assert third.errors == []
        outcomes = await _outcomes(runtime, job_id)
        assert {i: o for i, o in outcomes.items() if i in large} == dict.fromkeys(
            large, ("converted", 3)
        )
        assert {i: o for i, o in outcomes.items() if i not in large} == dict.fromkeys(
            set(pixels) - large, ("converted", 1)
        )
        job = await _job_row(runtime, job_id)
        assert (job.retried, job.converted, job.failed) == (4, 5, 0)
        assert job.bytes_after < job.bytes_before
        text = format_summary(third)
        assert "Retried after an earlier failure: 2 (2 converted)" in text
        assert "Failed: 0" in text
        for orthanc_id in pixels:
            served = served_file(conv_orthanc, orthanc_id)
            assert served is not None
            syntax = pydicom.dcmread(BytesIO(served), stop_before_pixels=True).file_meta
            assert syntax.TransferSyntaxUID in HTJ2K_SYNTAXES


async def _refs(runtime: Runtime) -> list[InstanceRef]:
    studies = await select_studies(runtime.orthanc, make_selection(study=STUDY))
    return await study_instances(runtime.orthanc, studies[0])


class TestCrashBetweenReplacementAndOutcome:
    async def test_an_unrecorded_replacement_counts_as_converted(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        _store(conv_orthanc, small=3, large=0)
        job_id = await _job(runtime)
        journal = open_journal(runtime.engine, runtime.settings.journal_dir)
        refs = await _refs(runtime)
        ref = refs[0]
        # The crash window: this job replaced the instance, then died before recording it.
        converted = await convert_instance(
            runtime.orthanc,
            runtime.pool,
            journal,
            ref,
            options=TranscodeOptions.from_settings(runtime.settings, allow_lossy=False),
            job_id=job_id,
        )
        assert converted.outcome == "converted"
        assert [e.orthanc_id for e in await journal.entries()] == [ref.orthanc_id]

        summary = await run_job(runtime, job_id, concurrency=2)

        assert [r.result for r in summary.recovered] == ["finished"]
        assert (summary.converted, summary.skipped, summary.failed) == (3, 0, 0)
        assert summary.skipped_by_reason == {}
        assert summary.instances_this_run == 2
        assert summary.bytes_before == sum(r.file_size for r in refs)  # the originals' sizes
        outcomes = await _outcomes(runtime, job_id)
        assert outcomes[ref.orthanc_id] == ("converted", 1)
        assert await journal.entries() == []

    async def test_a_recorded_replacement_is_not_counted_twice(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        _store(conv_orthanc, small=3, large=0)
        job_id = await _job(runtime)
        journal = open_journal(runtime.engine, runtime.settings.journal_dir)
        ref = (await _refs(runtime))[0]
        result = await convert_instance(
            runtime.orthanc,
            runtime.pool,
            journal,
            ref,
            options=TranscodeOptions.from_settings(runtime.settings, allow_lossy=False),
            job_id=job_id,
        )
        async with session_scope(runtime.sessions) as session:  # recorded; the crash came
            await record_outcome(session, job_id, result)  # before the journal entry's drop

        summary = await run_job(runtime, job_id, concurrency=2)

        assert [r.result for r in summary.recovered] == ["finished"]
        assert (summary.converted, summary.skipped) == (3, 0)
        assert await journal.entries() == []

    async def test_recovery_records_into_the_job_that_made_the_replacement(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        _store(conv_orthanc, small=2, large=0)
        crashed = await _job(runtime)
        journal = open_journal(runtime.engine, runtime.settings.journal_dir)
        ref = (await _refs(runtime))[0]
        await convert_instance(
            runtime.orthanc,
            runtime.pool,
            journal,
            ref,
            options=TranscodeOptions.from_settings(runtime.settings, allow_lossy=False),
            job_id=crashed,
        )

        other = await run_job(runtime, await _job(runtime), concurrency=2)  # a new job, no resume

        assert (other.converted, other.skipped_by_reason) == (1, {"already_htj2k": 1})
        assert (await _job_row(runtime, crashed)).converted == 1
        assert await _outcomes(runtime, crashed) == {ref.orthanc_id: ("converted", 1)}
