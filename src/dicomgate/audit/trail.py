"""The audit trail of one process: writes each entry, never silently loses one, exports it.

Rows are written in group commits: ``record`` queues the entry (the answer was already sent:
the middleware records after it) and one writer task commits what is queued, many rows per
transaction, as soon as the previous commit is done (and ``LINGER_SECONDS`` later, to gather a
few more). A reader of the trail (``/api/ris/audit/``) and health ``flush`` first, so they see
every row recorded before them; the lifespan's ``stop`` writes what is left at shutdown.

A batch that cannot be written is written again row by row, each in its own transaction, so
only the rows that fail are lost, as before batching: each is logged at ERROR, counted
(``dicomgate_audit_write_failures_total``) and turns health to 503 until a row is written
again. When ATNA export is configured, every entry is also queued as a DICOM Audit Message for
the hospital's audit repository (``audit.atna``); the export never blocks or fails a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import suppress

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dicomgate import metrics
from dicomgate.audit.service import AuditEntry, record_events
from dicomgate.audit.syslog import AtnaExporter
from dicomgate.db import session_scope

log = logging.getLogger(__name__)

LINGER_SECONDS = 0.005  # after the first queued row, before the commit: a few more join it
MAX_BATCH = 500  # rows per transaction
MAX_QUEUED = 10_000  # beyond it, ``record`` waits for the writer (memory stays bounded)


class AuditTrail:
    """Records audit entries (database row, then ATNA export) and remembers write failures."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        exporter: AtnaExporter | None = None,
        *,
        linger: float = LINGER_SECONDS,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.sessions = sessions
        self.exporter = exporter
        self.linger = linger
        self.max_queued = max_queued
        self.last_failure: float | None = None  # monotonic time of the last failed write
        self.failure_detail = ""
        self._queued: list[AuditEntry] = []
        self._wake = asyncio.Event()  # rows are queued
        self._room = asyncio.Event()  # the queue is below max_queued
        self._room.set()
        self._writing = asyncio.Lock()  # one flush at a time, in order
        self._writer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()  # set by ``stop``: ends a linger at once

    @property
    def healthy(self) -> bool:
        """False from a failed write until the next successful one."""
        return self.last_failure is None

    @property
    def queued(self) -> int:
        """Rows recorded but not yet written."""
        return len(self._queued)

    def start(self) -> None:
        """Start the writer task (the lifespan's); without it, ``record`` writes at once."""
        if self._writer is None:
            self._stopping.clear()
            self._writer = asyncio.create_task(self._write_loop(), name="audit-writer")

    async def stop(self) -> None:
        """Write every queued row, then end the writer (at shutdown; never cancels a commit)."""
        writer, self._writer = self._writer, None
        self._stopping.set()
        self._wake.set()
        if writer is not None:
            await writer
        await self.flush()

    async def record(self, entry: AuditEntry) -> None:
        """Queue the row for the writer (or, with no writer running, write it now)."""
        if self._writer is None:
            await self._write([entry])
        else:
            while len(self._queued) >= self.max_queued:
                self._room.clear()
                await self._room.wait()
            self._queued.append(entry)
            self._wake.set()
        if self.exporter is not None:
            self.exporter.submit(entry)

    async def flush(self) -> None:
        """Write every row queued so far (and wait for a commit under way)."""
        async with self._writing:
            while self._queued:
                batch = self._queued[:MAX_BATCH]
                del self._queued[:MAX_BATCH]
                self._room.set()
                await self._write(batch)

    async def _write_loop(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            self._wake.clear()
            if self.linger:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.linger)
            await self.flush()

    async def _write(self, batch: Sequence[AuditEntry]) -> None:
        """One transaction for the batch; if it fails, one per row (only failing rows lost)."""
        try:
            async with session_scope(self.sessions) as session:
                await record_events(session, batch)
        except Exception as exc:  # an audit failure must be loud but must not change the answer
            if len(batch) > 1:
                for entry in batch:
                    await self._write([entry])
                return
            self._lost(batch[0], exc)
        else:
            self.last_failure = None

    def _lost(self, entry: AuditEntry, exc: Exception) -> None:
        metrics.AUDIT_WRITE_FAILURES.inc()
        self.last_failure = time.monotonic()
        self.failure_detail = f"the last audit row could not be written ({type(exc).__name__})"
        log.error(
            "AUDIT ROW LOST: could not write the audit event %s %s (%s, status %d)",
            entry.method,
            entry.route,
            entry.action,
            entry.status_code,
            exc_info=exc,
        )
