"""``dicomgate transcode PATH... -o OUTDIR``: transcode files and folders to lossless HTJ2K."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from pebble import ProcessPool

from dicomgate.codec.transcode import TranscodeOptions, transcode
from dicomgate.errors import DicomgateError
from dicomgate.settings import Settings


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input file (small: crosses the process boundary)."""

    source: str
    target: str
    status: str  # "converted" | "passed" | "failed"
    reason: str | None
    size_in: int
    size_out: int


@dataclass
class Summary:
    """Totals over a run."""

    converted: int = 0
    passed: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def add(self, outcome: FileOutcome) -> None:
        if outcome.status == "converted":
            self.converted += 1
        elif outcome.status == "passed":
            self.passed[outcome.reason or "unknown"] += 1
        else:
            self.failed += 1
        self.bytes_in += outcome.size_in
        self.bytes_out += outcome.size_out


def transcode_file(source: str, target: str, options: TranscodeOptions) -> FileOutcome:
    """Transcode one file to ``target``: pass-throughs copied unchanged, failures not written."""
    data = Path(source).read_bytes()
    try:
        result = transcode(data, options)
    except DicomgateError as exc:
        return FileOutcome(source, target, "failed", exc.message, len(data), 0)
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    if result.converted:
        partial.write_bytes(result.data)
    else:
        shutil.copyfile(source, partial)
    os.replace(partial, out)
    status = "converted" if result.converted else "passed"
    return FileOutcome(source, target, status, result.reason, len(data), result.size)


def transcode_files(pairs: list[tuple[str, str]], options: TranscodeOptions) -> list[FileOutcome]:
    """A batch of files in one worker task (fewer round trips than one task per small file)."""
    return [transcode_file(source, target, options) for source, target in pairs]


CHUNK = 8  # files per worker task; a failed batch is retried file by file


def iter_inputs(paths: list[Path], outdir: Path) -> Iterator[tuple[Path, Path]]:
    """(input, output) pairs: a file maps to OUTDIR/name, a folder's files to OUTDIR/relative."""
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                yield child, outdir / child.relative_to(path)
        elif path.is_file():
            yield path, outdir / path.name


def _print_summary(summary: Summary, elapsed: float, files: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="dicomgate transcode")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("converted", str(summary.converted))
    for reason, count in sorted(summary.passed.items()):
        table.add_row(f"passed through: {reason}", str(count))
    table.add_row("failed", str(summary.failed))
    table.add_row("bytes in", f"{summary.bytes_in:,}")
    table.add_row("bytes out", f"{summary.bytes_out:,}")
    ratio = summary.bytes_in / summary.bytes_out if summary.bytes_out else 0.0
    table.add_row("ratio in/out", f"{ratio:.2f}")
    table.add_row("files/s", f"{files / elapsed:.1f}" if elapsed > 0 else "-")
    Console(file=sys.stdout, width=100).print(table)


def _one_by_one(
    pool: ProcessPool, src: Path, dst: Path, options: TranscodeOptions, timeout: float
) -> FileOutcome:
    """Run one file in its own task; a crashed or timed-out worker fails this file only."""
    future = pool.schedule(transcode_file, args=(str(src), str(dst), options), timeout=timeout)
    try:
        result: FileOutcome = future.result()
    except Exception as exc:
        return FileOutcome(
            str(src),
            str(dst),
            "failed",
            f"worker failed: {type(exc).__name__}",
            src.stat().st_size,
            0,
        )
    return result


def _handler(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import Progress

    outdir: Path = args.outdir
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"no such file or folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    options = TranscodeOptions.from_settings(settings, allow_lossy=True, target=args.target)
    pairs: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    summary = Summary()
    for src, dst in iter_inputs(args.paths, outdir.resolve()):
        if dst in seen or src.resolve() == dst:  # never overwrite an output or an input
            summary.add(
                FileOutcome(
                    str(src), str(dst), "failed", "output path collision", src.stat().st_size, 0
                )
            )
            print(f"failed    {src} (output path collision: {dst})", file=sys.stderr)
            continue
        seen.add(dst)
        pairs.append((src, dst))
    workers = args.workers or settings.workers
    start = time.perf_counter()
    show_bar = sys.stdout.isatty() and not args.verbose
    with ProcessPool(max_workers=workers) as pool, Progress(disable=not show_bar) as progress:
        task = progress.add_task("transcoding", total=len(pairs))
        batches = [pairs[i : i + CHUNK] for i in range(0, len(pairs), CHUNK)]
        futures: list[tuple[list[tuple[Path, Path]], Future[list[FileOutcome]]]] = [
            (
                batch,
                pool.schedule(
                    transcode_files,
                    args=([(str(a), str(b)) for a, b in batch], options),
                    timeout=settings.transcode_timeout * len(batch),
                ),
            )
            for batch in batches
        ]
        for batch, future in futures:
            try:
                outcomes = future.result()
            except Exception:  # a crash or overrun in the batch: retry its files one by one
                outcomes = [
                    _one_by_one(pool, src, dst, options, settings.transcode_timeout)
                    for src, dst in batch
                ]
            for outcome in outcomes:
                summary.add(outcome)
                progress.advance(task)
                if args.verbose or outcome.status == "failed":
                    detail = f" ({outcome.reason})" if outcome.reason else ""
                    stream = sys.stderr if outcome.status == "failed" else sys.stdout
                    print(f"{outcome.status:9} {outcome.source}{detail}", file=stream)
    total = summary.converted + sum(summary.passed.values()) + summary.failed
    _print_summary(summary, time.perf_counter() - start, total)
    return 1 if summary.failed else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dicomgate transcode``."""
    parser = subparsers.add_parser(
        "transcode", help="transcode DICOM files or folders to lossless HTJ2K (verified)"
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("-o", "--outdir", type=Path, required=True, metavar="OUTDIR")
    parser.add_argument(
        "--target",
        choices=["htj2k", "htj2k-rpcl", "jpeg2000"],
        default=None,
        help="target transfer syntax (default: DICOMGATE_TARGET_SYNTAX)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: DICOMGATE_WORKERS)"
    )
    parser.add_argument("--verbose", action="store_true", help="one line per file")
    parser.set_defaults(func=_handler)
