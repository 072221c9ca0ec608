"""``dicomgate convert-to-htj2k``: the batch conversion, from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from dicomgate.codec.reasons import reason_text
from dicomgate.conversions.lifecycle import RunSummary
from dicomgate.conversions.plan import InstanceResult, make_selection
from dicomgate.conversions.queue import run_job_here, uses_queue
from dicomgate.conversions.service import run_job, start_or_resume
from dicomgate.errors import DicomgateError, JobRunningElsewhere
from dicomgate.runtime import open_runtime
from dicomgate.settings import Settings

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 3


def register(subparsers: Any) -> None:
    """Add ``convert-to-htj2k`` to the ``dicomgate`` command."""
    parser = subparsers.add_parser(
        "convert-to-htj2k",
        help="convert studies stored in Orthanc to lossless HTJ2K, in place and resumable",
        description="Convert stored instances to lossless HTJ2K. Each original is kept in the "
        "journal (DICOMGATE_JOURNAL_DIR on SQLite; a table on PostgreSQL) until Orthanc "
        "verifiably serves the converted file; "
        "running the same command again after a crash is always safe.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", metavar="UID", help="one study (StudyInstanceUID)")
    which.add_argument("--patient", metavar="ID", help="every study of one patient (PatientID)")
    which.add_argument("--all", action="store_true", help="every study in Orthanc")
    parser.add_argument(
        "--dry-run", action="store_true", help="measure what would be converted; change nothing"
    )
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="with --dry-run: transcode N sampled instances to estimate bytes and time "
        "(default: DICOMGATE_CONVERSION_SAMPLE_SIZE)",
    )
    sampling.add_argument(
        "--exact",
        action="store_true",
        help="with --dry-run: transcode every candidate (exact bytes; as slow as a real run)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help="instances in flight (default: the worker count)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished job with the same selectors, else start one",
    )
    parser.set_defaults(func=handle_convert, needs_database=True)


def handle_convert(args: argparse.Namespace, settings: Settings) -> int:
    """Run the conversion; exit 0 (done), 1 (some failed), 2 (bad usage), 3 (stopped, resumable;
    or the job is being run by another process)."""
    try:
        selection = make_selection(study=args.study, patient=args.patient, all_studies=args.all)
    except DicomgateError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    concurrency = args.concurrency or settings.workers
    if concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if (args.sample is not None or args.exact) and not args.dry_run:
        print("error: --sample and --exact apply to --dry-run", file=sys.stderr)
        return EXIT_USAGE
    if args.sample is not None and args.sample < 1:
        print("error: --sample must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(
        _convert(
            settings,
            selection=selection,
            dry_run=args.dry_run,
            resume=args.resume,
            concurrency=concurrency,
            sample=args.sample,
            exact=args.exact,
        )
    )


class RichProgress:
    """A progress bar on a terminal: studies and instances, rate and ETA."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._studies = self._progress.add_task("studies", total=None, rate="")
        self._instances = self._progress.add_task("instances", total=None, rate="")
        self._seen: set[str] = set()
        self._count = 0
        self._start = 0.0

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def started(self, *, studies: int, instances: int, already_done: int) -> None:
        import time

        self._start = time.perf_counter()
        self._progress.update(self._studies, total=studies)
        self._progress.update(self._instances, total=instances, completed=already_done)

    def study(self, study_instance_uid: str) -> None:
        if study_instance_uid not in self._seen:
            self._seen.add(study_instance_uid)
            self._progress.update(
                self._studies,
                completed=len(self._seen),
                description=f"studies ({study_instance_uid[-16:]})",
            )

    def advanced(self, result: InstanceResult) -> None:
        import time

        self._count += 1
        elapsed = time.perf_counter() - self._start
        rate = f"{self._count / elapsed:.1f} inst/s" if elapsed > 0 else ""
        self._progress.update(self._instances, advance=1, rate=rate)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    return f"{count} B"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def approximate_duration(seconds: float) -> str:
    """An estimated duration: "~5 s", "~3 min", or "under 1 s" (never "~0 s")."""
    text = _duration(seconds)
    return text if seconds < 1 else f"~{text}"


MAX_STUDY_LINES = 50


def _dry_run_lines(summary: RunSummary) -> list[str]:
    """Per study and total: counts (exact), projected bytes and time (estimated, and how)."""
    lines = [f"Dry run of job {summary.job_id} ({summary.selection}): nothing was changed"]
    estimate = summary.estimate
    approx = "" if estimate is not None and estimate.exact else "~"
    studies = sorted(summary.studies.items())
    for study_uid, tally in studies[:MAX_STUDY_LINES]:
        skipped = ", ".join(f"{n} {reason_text(r)}" for r, n in sorted(tally.skipped.items()))
        lines.append(
            f"  study {study_uid}: {tally.to_convert} to convert"
            + (f", skipped: {skipped}" if skipped else "")
            + (f", {tally.failed} would fail" if tally.failed else "")
            + f"; {_size(tally.bytes_now)} now → {approx}{_size(tally.bytes_projected)}"
        )
    if len(studies) > MAX_STUDY_LINES:
        lines.append(f"  … and {len(studies) - MAX_STUDY_LINES} more studies")
    lines.append(f"Instances to convert: {summary.converted}")
    lines.extend(_skip_lines(summary))
    if estimate is None:  # stopped before the estimate
        lines.append(f"State: {summary.state}")
        return lines
    spread = ""
    low, high = _size(estimate.bytes_after_low), _size(estimate.bytes_after_high)
    if not estimate.exact and low != high:
        spread = f" ({low}–{high} at the lowest/highest ratio seen)"
    lines.append(
        f"Bytes now: {_size(summary.bytes_before)}; projected after: {approx}"
        f"{_size(summary.bytes_after)}{spread}; saved {approx}{summary.saved_percent:.1f}%"
    )
    if estimate.projected_seconds is not None and estimate.seconds_per_instance is not None:
        lines.append(
            f"Projected time for a real run: {approximate_duration(estimate.projected_seconds)} at "
            f"concurrency {estimate.concurrency} ({estimate.seconds_per_instance:.2f} s per "
            "instance: download and transcode measured, the replacement estimated)"
        )
    lines.append(estimate.note)
    return lines


def _skip_lines(summary: RunSummary) -> list[str]:
    others = {r: n for r, n in summary.skipped_by_reason.items() if r != "already_htj2k"}
    lines = [
        f"Already HTJ2K: {summary.skipped_by_reason.get('already_htj2k', 0)}",
        "Skipped: "
        + (", ".join(f"{n} {reason_text(r)}" for r, n in sorted(others.items())) or "none"),
        f"Failed: {summary.failed}",
    ]
    lines.extend(f"  {error}" for error in summary.errors[-10:])
    return lines


def format_summary(summary: RunSummary) -> str:
    """The final report of a run (dry or real), for a person."""
    lines: list[str] = []
    for recovered in summary.recovered:
        lines.append(f"Recovered instance {recovered.entry.orthanc_id}: {recovered.result}")
    if summary.dry_run:
        lines.extend(_dry_run_lines(summary))
    else:
        lines.append(f"Conversion job {summary.job_id} ({summary.selection}): {summary.state}")
        lines.append(f"Converted: {summary.converted}")
        lines.extend(_skip_lines(summary))
        if summary.retried:
            again = ", ".join(
                f"{n} {'failed again' if outcome == 'failed' else outcome}"
                for outcome, n in sorted(summary.retried.items())
            )
            lines.append(f"Retried after an earlier failure: {summary.retried.total()} ({again})")
        lines.append(
            f"Bytes before: {_size(summary.bytes_before)}; Bytes after: "
            f"{_size(summary.bytes_after)}; saved {summary.saved_percent:.1f}%"
        )
    lines.append(
        f"Elapsed: {summary.elapsed:.1f} s; {summary.rate:.1f} instances/s "
        f"({summary.instances_this_run} this run)"
    )
    if summary.stop_message:
        lines.append(summary.stop_message)
    return "\n".join(lines)


async def _convert(
    settings: Settings,
    *,
    selection: Any,
    dry_run: bool,
    resume: bool,
    concurrency: int,
    sample: int | None = None,
    exact: bool = False,
) -> int:
    async with open_runtime(settings) as runtime:
        try:
            job_id = await start_or_resume(
                runtime,
                selection=selection,
                dry_run=dry_run,
                resume=resume,
                sample=sample,
                exact=exact,
            )
        except DicomgateError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return EXIT_USAGE
        # PostgreSQL: a real job goes through the task queue; this process works on it (and
        # every `dicomgate worker` helps). SQLite, or a dry run: it runs here, as one run.
        run = run_job_here if uses_queue(runtime) and not dry_run else run_job
        try:
            if sys.stderr.isatty():
                with RichProgress() as progress:
                    summary = await run(runtime, job_id, concurrency=concurrency, progress=progress)
            else:
                summary = await run(runtime, job_id, concurrency=concurrency)
        except JobRunningElsewhere as exc:  # nothing done here; the job goes on over there
            print(f"error: {exc.message}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except DicomgateError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return EXIT_USAGE
    print(format_summary(summary))
    if summary.state == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_FAILURES if summary.failed else EXIT_OK
