"""The audit trail of one process: writes each entry, never silently loses one, exports it.

A row that cannot be written is logged at ERROR, counted
(``dicomgate_audit_write_failures_total``) and turns health to 503 until a row is written
again. When ATNA export is configured, every entry is also queued as a DICOM Audit Message for
the hospital's audit repository (``audit.atna``); the export never blocks or fails a request.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dicomgate import metrics
from dicomgate.audit.service import AuditEntry, record_event
from dicomgate.audit.syslog import AtnaExporter
from dicomgate.db import session_scope

log = logging.getLogger(__name__)


class AuditTrail:
    """Records audit entries (database row, then ATNA export) and remembers write failures."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], exporter: AtnaExporter | None = None
    ) -> None:
        self.sessions = sessions
        self.exporter = exporter
        self.last_failure: float | None = None  # monotonic time of the last failed write
        self.failure_detail = ""

    @property
    def healthy(self) -> bool:
        """False from a failed write until the next successful one."""
        return self.last_failure is None

    async def record(self, entry: AuditEntry) -> None:
        """Write the row (a failure is loud, never raised) and hand the entry to the export."""
        try:
            async with session_scope(self.sessions) as session:
                await record_event(session, entry)
        except Exception as exc:  # an audit failure must be loud but must not change the answer
            metrics.AUDIT_WRITE_FAILURES.inc()
            self.last_failure = time.monotonic()
            self.failure_detail = f"the last audit row could not be written ({type(exc).__name__})"
            log.exception(
                "AUDIT ROW LOST: could not write the audit event %s %s (%s, status %d)",
                entry.method,
                entry.route,
                entry.action,
                entry.status_code,
            )
        else:
            self.last_failure = None
        if self.exporter is not None:
            self.exporter.submit(entry)
