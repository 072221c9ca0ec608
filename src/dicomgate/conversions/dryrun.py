"""A conversion dry run: classify every instance from Orthanc's index, transcode a sample, project.

Nothing in Orthanc changes, and only the sample is downloaded (see :mod:`.estimate`): per study,
one ``/series/{id}/instances-tags?short`` call per series and one ``/instances/{id}/header``
call per instance classify everything; then a bounded, stratified random sample of the
candidates is downloaded and transcoded in the worker pool (never stored) to measure the size
ratio and the time per instance. The journal is not touched either: unfinished replacements in
it are counted and left to the next real run. A dry run keeps no per-instance outcomes; resuming
an interrupted one simply runs it again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence

from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from dicomgate.codec.reasons import reason_text
from dicomgate.codec.transcode import TranscodeOptions, transcode
from dicomgate.conversions import repository
from dicomgate.conversions.estimate import (
    NO_GROUP,
    Classification,
    DryRunEstimate,
    Measurement,
    Ratios,
    choose_sample,
    classify_instance,
    warm_worker,
)
from dicomgate.conversions.journals import pending_replacements
from dicomgate.conversions.lifecycle import (
    STOPPING_ERRORS,
    ProgressSink,
    RunSummary,
    StudyTally,
    begin_run,
    cancel_requested,
    fail_run,
    finish_run,
    set_job_state,
    stop_run,
)
from dicomgate.conversions.plan import (
    InstanceRef,
    InstanceResult,
    StudyRef,
    select_studies,
    study_instances,
)
from dicomgate.db import session_scope
from dicomgate.errors import DicomgateError
from dicomgate.runtime import Runtime

log = logging.getLogger(__name__)

MAX_STUDIES_IN_ESTIMATE = 1000  # per-study rows kept with the job (the CLI prints them all)

Classified = tuple[InstanceRef, Classification]


async def run_dry_job(
    runtime: Runtime,
    job_id: int,
    *,
    concurrency: int,
    progress: ProgressSink | None,
    seed: int,
) -> RunSummary:
    """Run a dry-run job: counts exact from the tags, projected bytes and time from a sample."""
    begun = await begin_run(runtime, job_id, dry_run=True)
    summary, started = begun.summary, begun.started
    rng = random.Random(seed)
    try:
        studies = await select_studies(runtime.orthanc, begun.selection)
        listed: list[tuple[StudyRef, list[InstanceRef]]] = []
        for study in studies:
            instances = await study_instances(runtime.orthanc, study)
            listed.append((study, [ref for ref in instances if begun.selection.covers(ref)]))
        total = sum(len(instances) for _, instances in listed)
        await set_job_state(runtime, job_id, instances_total=total)
        if progress is not None:
            progress.started(studies=len(studies), instances=total, already_done=0)
        classified: list[Classified] = []
        for study, instances in listed:
            if await cancel_requested(runtime, job_id):
                return await finish_run(runtime, summary, started, "cancelled")
            if progress is not None:
                progress.study(study.study_instance_uid)
            classified.extend(await _classify(runtime, instances, progress))
        candidates = [item for item in classified if item[1].kind == "candidate"]
        sample = choose_sample(
            candidates, group_of=lambda item: item[1].group, size=begun.sample_size, rng=rng
        )
        if sample and await cancel_requested(runtime, job_id):
            return await finish_run(runtime, summary, started, "cancelled")
        measurements = await _measure(runtime, sample, concurrency=concurrency)
    except STOPPING_ERRORS as exc:
        return await stop_run(runtime, summary, started, str(exc))
    except DicomgateError as exc:
        return await fail_run(runtime, summary, started, exc.message)

    pending = await pending_replacements(runtime.engine, runtime.settings.journal_dir)
    estimate, counts = _project(
        summary,
        classified,
        dict(zip((ref.orthanc_id for ref, _ in sample), measurements, strict=True)),
        candidates=len(candidates),
        concurrency=concurrency,
        journal_pending=pending,
    )
    summary.estimate = estimate
    async with session_scope(runtime.sessions) as session:
        job = await repository.get_job(session, job_id)
        job.instances_total = total
        job.converted = counts.to_convert
        job.skipped = sum(counts.skipped.values())
        job.skipped_by_reason = dict(counts.skipped)
        job.failed = counts.failed
        job.errors = counts.errors[-repository.MAX_JOB_ERRORS :]
        job.bytes_before = counts.bytes_before
        job.bytes_after = counts.bytes_after
        job.current_study = None
        job.estimate = estimate.to_json()
    summary.instances_this_run = total
    log.info("Dry run of job %d: %s", job_id, estimate.note)
    return await finish_run(runtime, summary, started, "completed")


async def _classify(
    runtime: Runtime, instances: Sequence[InstanceRef], progress: ProgressSink | None
) -> list[Classified]:
    """Classify one study's instances: tags once per series, the header once per instance."""
    orthanc = runtime.orthanc
    tags: dict[str, dict[str, object]] = {}
    for series_id in sorted({ref.series_id for ref in instances if ref.series_id}):
        tags.update(await orthanc.series_instances_tags(series_id, short=True))
    gate = asyncio.Semaphore(max(1, runtime.settings.orthanc_concurrency))
    max_pixels = runtime.settings.max_pixels

    async def one(ref: InstanceRef) -> Classification:
        async with gate:
            try:
                header = await orthanc.instance_header(ref.orthanc_id)
            except STOPPING_ERRORS:
                raise
            except DicomgateError as exc:  # e.g. deleted meanwhile: a real run fails it too
                return Classification("failed", f"{exc.type}: {exc.message}", NO_GROUP)
        syntax = header.transfer_syntax
        found = tags.get(ref.orthanc_id)
        if found is None and syntax not in HTJ2K_SYNTAXES:
            # Not in the series listing (stored meanwhile): let the sample tell.
            return Classification("candidate", None, ("", syntax, "", "", ""))
        return classify_instance(syntax, found or {}, max_pixels=max_pixels)

    results = await asyncio.gather(*(one(ref) for ref in instances), return_exceptions=True)
    classified: list[Classified] = []
    for ref, result in zip(instances, results, strict=True):
        if isinstance(result, BaseException):
            raise result
        classified.append((ref, result))
        if progress is not None:
            progress.advanced(
                InstanceResult(
                    ref,
                    "planned" if result.kind == "candidate" else result.kind,
                    result.reason,
                    ref.file_size,
                    ref.file_size,
                )
            )
    return classified


async def _measure(
    runtime: Runtime, sample: Sequence[Classified], *, concurrency: int
) -> list[Measurement]:
    """Download and transcode each sampled instance (nothing stored), timing each step."""
    options = TranscodeOptions.from_settings(runtime.settings, allow_lossy=False)
    gate = asyncio.Semaphore(max(1, concurrency))
    if sample:  # the first task in a fresh worker pays for its imports: not part of the estimate
        await asyncio.gather(*(runtime.pool.run(warm_worker) for _ in range(runtime.pool.workers)))

    async def one(ref: InstanceRef, found: Classification) -> Measurement:
        async with gate:
            try:
                start = time.perf_counter()
                await runtime.orthanc.metadata("instances", ref.orthanc_id)
                request = time.perf_counter() - start
                start = time.perf_counter()
                data = await runtime.orthanc.instance_file(ref.orthanc_id)
                downloaded = time.perf_counter()
                result = await runtime.pool.run(transcode, data, options)
            except STOPPING_ERRORS:
                raise
            except DicomgateError as exc:
                log.info("Sampled instance %s fails: %s", ref.orthanc_id, exc.message)
                return Measurement(
                    found.group,
                    "failed",
                    f"{exc.type}: {exc.message}",
                    ref.file_size,
                    ref.file_size,
                    0.0,
                    0.0,
                )
            done = time.perf_counter()
        if not result.converted:
            log.info(
                "Sampled instance %s would be skipped: %s",
                ref.orthanc_id,
                reason_text(result.reason),
            )
            return Measurement(
                found.group,
                "skipped",
                result.reason,
                len(data),
                len(data),
                downloaded - start,
                done - downloaded,
                request,
            )
        log.info(
            "Sampled instance %s: %d → %d bytes in %.2f s",
            ref.orthanc_id,
            len(data),
            result.size,
            done - start,
        )
        return Measurement(
            found.group,
            "converted",
            None,
            len(data),
            result.size,
            downloaded - start,
            done - downloaded,
            request,
        )

    results = await asyncio.gather(*(one(ref, c) for ref, c in sample), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if isinstance(r, Measurement)]


class _Counts:
    """Totals of a dry run, as stored on the job."""

    def __init__(self) -> None:
        self.to_convert = 0
        self.skipped: Counter[str] = Counter()
        self.failed = 0
        self.errors: list[str] = []
        self.bytes_before = 0
        self.bytes_after = 0
        self.bytes_low = 0
        self.bytes_high = 0


def _project(
    summary: RunSummary,
    classified: Sequence[Classified],
    measured: dict[str, Measurement],
    *,
    candidates: int,
    concurrency: int,
    journal_pending: int,
) -> tuple[DryRunEstimate, _Counts]:
    """Per-study and total counts and bytes: measured where sampled, extrapolated elsewhere."""
    ratios = Ratios.of(list(measured.values()))
    counts = _Counts()
    for ref, found in classified:
        tally = summary.studies.setdefault(ref.study_instance_uid, StudyTally())
        sampled = measured.get(ref.orthanc_id)
        if sampled is not None:
            size, outcome, reason = sampled.bytes_before, sampled.outcome, sampled.reason
            after = low = high = sampled.bytes_after
        elif found.kind == "candidate":
            size, outcome, reason = ref.file_size, "converted", None
            after, low, high = ratios.projected(found.group, size)
        else:
            size, outcome, reason = ref.file_size, found.kind, found.reason
            after = low = high = size
        tally.bytes_now += size
        tally.bytes_projected += after
        counts.bytes_before += size
        counts.bytes_after += after
        counts.bytes_low += low
        counts.bytes_high += high
        if outcome == "converted":
            tally.to_convert += 1
            counts.to_convert += 1
        elif outcome == "skipped":
            tally.skipped[reason or "unknown"] += 1
            counts.skipped[reason or "unknown"] += 1
        else:
            tally.failed += 1
            counts.failed += 1
            counts.errors.append(f"{ref.orthanc_id}: {reason}")
    converted = [m for m in measured.values() if m.outcome == "converted"]
    per_instance = (
        sum(m.real_run_seconds for m in converted) / len(converted) if converted else None
    )
    studies = sorted(summary.studies.items())
    estimate = DryRunEstimate(
        exact=len(measured) == candidates,
        candidates=candidates,
        to_convert=counts.to_convert,
        sampled=len(measured),
        sampled_converted=len(converted),
        sampled_skipped=dict(
            Counter(m.reason or "unknown" for m in measured.values() if m.outcome == "skipped")
        ),
        sampled_failed=sum(1 for m in measured.values() if m.outcome == "failed"),
        ratio=ratios.overall,
        ratio_min=ratios.low,
        ratio_max=ratios.high,
        bytes_after_low=counts.bytes_low,
        bytes_after_high=counts.bytes_high,
        seconds_per_instance=per_instance,
        projected_seconds=(
            counts.to_convert * per_instance / max(1, concurrency)
            if per_instance is not None
            else None
        ),
        concurrency=concurrency,
        journal_pending=journal_pending,
        studies=[
            {
                "study_instance_uid": uid,
                "to_convert": t.to_convert,
                "skipped": dict(t.skipped),
                "failed": t.failed,
                "bytes_now": t.bytes_now,
                "bytes_projected": t.bytes_projected,
            }
            for uid, t in studies[:MAX_STUDIES_IN_ESTIMATE]
        ],
        studies_omitted=max(0, len(studies) - MAX_STUDIES_IN_ESTIMATE),
    )
    return estimate, counts
