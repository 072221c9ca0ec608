"""``dicomgate worker``: a process that converts studies from the shared task queue (PostgreSQL).

Run any number, on any machines that reach PostgreSQL and Orthanc: each takes study tasks of
every job (:mod:`.queue`), sends heartbeats, and puts back in the queue the tasks of workers
that went silent. SIGTERM or Ctrl-C: the studies in flight get a short grace, then are cut short
safely and queued again.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from dicomgate.conversions.queue import open_queue, uses_queue
from dicomgate.runtime import open_runtime
from dicomgate.settings import Settings

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``worker`` to the ``dicomgate`` command."""
    parser = subparsers.add_parser(
        "worker",
        help="convert studies from the shared task queue (PostgreSQL); run one or more anywhere",
        description="A conversion worker: takes the study tasks of every conversion job from "
        "the task queue in DICOMGATE_DATABASE_URL (PostgreSQL) and converts them in place, "
        "safely. Start as many as you like, on any machine that reaches PostgreSQL and Orthanc.",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help="studies converted at once (default: DICOMGATE_WORKER_CONCURRENCY); each keeps "
        "DICOMGATE_WORKERS instances in flight",
    )
    parser.set_defaults(func=handle_worker, needs_database=True)


def handle_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; exit 2 on bad usage (e.g. SQLite)."""
    concurrency = args.concurrency or settings.worker_concurrency
    if concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return 2
    return asyncio.run(_work(settings, concurrency))


async def _work(settings: Settings, concurrency: int) -> int:
    async with open_runtime(settings) as runtime:
        if not uses_queue(runtime):
            print(
                "error: `dicomgate worker` needs PostgreSQL (DICOMGATE_DATABASE_URL); on SQLite "
                "`dicomgate serve` runs conversion jobs itself",
                file=sys.stderr,
            )
            return 2
        # A study taken at once does not wait for the workers' spawn and codec imports.
        await runtime.pool.warm(("dicomgate.conversions.transcoding",))
        async with open_queue(runtime) as queue:
            await queue.sweep()
            if settings.resume_conversions_every:
                queue.watch(every=settings.resume_conversions_every)
            log.info("Conversion worker started: %d studies at once", concurrency)
            worker = queue.run_worker(concurrency=concurrency, install_signal_handlers=True)
            await worker  # ends on SIGTERM/SIGINT (procrastinate's graceful stop)
    log.info("Conversion worker stopped")
    return 0
