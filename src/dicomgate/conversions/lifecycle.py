"""The life of one run of a job, shared by the real run and the dry run.

A run begins (the job is marked running), reports progress, and ends in one of the job states:
completed, cancelled, failed, or interrupted (Orthanc stopped it: resumable). Each step is its
own short transaction, so what the API shows is never more than one instance behind.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from dicomgate.conversions import repository
from dicomgate.conversions.estimate import DryRunEstimate
from dicomgate.conversions.models import UNFINISHED_STATES, ConversionJob
from dicomgate.conversions.plan import InstanceResult, Selection
from dicomgate.conversions.replace import Recovered
from dicomgate.db import session_scope
from dicomgate.errors import ConversionJobNotFound, OrthancTimeout, OrthancUnavailable
from dicomgate.kit.clock import utcnow
from dicomgate.runtime import Runtime

log = logging.getLogger(__name__)

# Orthanc unreachable or too slow: every further instance would fail too, so the run stops,
# interrupted and resumable, instead of failing them one by one.
STOPPING_ERRORS = (OrthancUnavailable, OrthancTimeout)


class ProgressSink(Protocol):
    """Where a run reports progress (the CLI's progress bar; nothing for the API)."""

    def started(self, *, studies: int, instances: int, already_done: int) -> None: ...

    def study(self, study_instance_uid: str) -> None: ...

    def advanced(self, result: InstanceResult) -> None: ...


@dataclass
class StudyTally:
    """Per-study counts (for the dry-run report)."""

    to_convert: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    bytes_now: int = 0
    bytes_projected: int = 0


@dataclass
class RunSummary:
    """What one run (or resumed run) of a job did."""

    job_id: int
    state: str
    dry_run: bool
    selection: str
    converted: int = 0
    skipped: int = 0
    failed: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    bytes_before: int = 0
    bytes_after: int = 0
    elapsed: float = 0.0
    instances_this_run: int = 0
    recovered: list[Recovered] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop_message: str | None = None
    studies: dict[str, StudyTally] = field(default_factory=dict)
    # Instances whose earlier attempt had failed, retried in this run, by their new outcome.
    retried: Counter[str] = field(default_factory=Counter)
    estimate: DryRunEstimate | None = None  # dry run: how the projections were obtained

    @property
    def done(self) -> int:
        """Instances the job is done with (converted, skipped or failed)."""
        return self.converted + self.skipped + self.failed

    def count_from(self, job: ConversionJob) -> None:
        """Take the job's counts, bytes and errors from its row (every run's, every worker's)."""
        self.converted, self.skipped, self.failed = job.converted, job.skipped, job.failed
        self.skipped_by_reason = dict(job.skipped_by_reason or {})
        self.bytes_before, self.bytes_after = job.bytes_before, job.bytes_after
        self.errors = list(job.errors or [])

    @property
    def saved_percent(self) -> float:
        return 100.0 * (1 - self.bytes_after / self.bytes_before) if self.bytes_before else 0.0

    @property
    def rate(self) -> float:
        return self.instances_this_run / self.elapsed if self.elapsed > 0 else 0.0


def summary_of(job: ConversionJob) -> RunSummary:
    """A job's row as a summary: its state, selection, counts and time over every run."""
    summary = RunSummary(
        job_id=job.id,
        state=job.state,
        dry_run=job.dry_run,
        selection=repository.selection_of(job).describe(),
        elapsed=job.elapsed or 0.0,
    )
    summary.count_from(job)
    return summary


@dataclass(frozen=True)
class BegunRun:
    """A job marked running: what the run needs from its row."""

    selection: Selection
    sample_size: int | None
    summary: RunSummary
    started: float  # time.perf_counter() at the start
    target_syntax: str | None = None  # the job's target (None: the settings')


async def begin_run(runtime: Runtime, job_id: int, *, dry_run: bool) -> BegunRun:
    """Mark an unfinished job running (ConversionJobNotFound when it is gone or ended)."""
    started = time.perf_counter()
    async with session_scope(runtime.sessions) as session:
        job = await repository.get_job(session, job_id)
        if job.state not in UNFINISHED_STATES:
            raise ConversionJobNotFound(f"Conversion job {job_id} is already {job.state}")
        selection = repository.selection_of(job)
        sample_size = job.sample_size
        target_syntax = job.target_syntax
        job.state = "running"
        job.started_at = job.started_at or utcnow()
    summary = RunSummary(
        job_id=job_id, state="running", dry_run=dry_run, selection=selection.describe()
    )
    return BegunRun(selection, sample_size, summary, started, target_syntax)


async def set_job_state(runtime: Runtime, job_id: int, **values: object) -> None:
    """Set columns of a job in their own transaction."""
    async with session_scope(runtime.sessions) as session:
        job = await repository.get_job(session, job_id)
        for key, value in values.items():
            setattr(job, key, value)


async def cancel_requested(runtime: Runtime, job_id: int) -> bool:
    """True once someone asked the job to stop (read in its own transaction)."""
    async with session_scope(runtime.sessions) as session:
        return bool((await repository.get_job(session, job_id)).cancel_requested)


async def finish_run(
    runtime: Runtime, summary: RunSummary, started: float, state: str, message: str | None = None
) -> RunSummary:
    """End a run (real or dry) in ``state``: elapsed time and final state on the job."""
    elapsed = time.perf_counter() - started
    async with session_scope(runtime.sessions) as session:
        job = await repository.get_job(session, summary.job_id)
        job.state = state
        job.elapsed = (job.elapsed or 0.0) + elapsed
        if state != "interrupted":
            job.finished_at = utcnow()
        if message:
            repository.add_error(job, message)
        summary.count_from(job)
    summary.state = state
    summary.elapsed = elapsed
    return summary


async def stop_run(
    runtime: Runtime, summary: RunSummary, started: float, reason: str
) -> RunSummary:
    """End a run that Orthanc's failure stopped: interrupted, resumable, with the reason."""
    message = (
        f"Stopped: {reason}. No instance is missing: unfinished replacements are kept in "
        f"the journal and settled at the next start; run again with --resume."
    )
    log.error("%s", message)
    summary.stop_message = message
    return await finish_run(runtime, summary, started, "interrupted", message)


async def fail_run(
    runtime: Runtime, summary: RunSummary, started: float, message: str
) -> RunSummary:
    """End a run that cannot go on (e.g. the selected study does not exist): failed."""
    summary.stop_message = f"Failed: {message}"
    return await finish_run(runtime, summary, started, "failed", message)
