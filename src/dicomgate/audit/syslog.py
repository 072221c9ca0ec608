"""ATNA export over syslog: RFC 5424 messages, TCP with RFC 6587 octet counting, TLS optional
(RFC 5425), sent by one background task so that no request ever waits for the repository.

Entries are queued (bounded); the sender connects lazily, and on a failure reconnects with a
growing pause and sends the same message again, so a repository that is down for a while loses
nothing until the queue is full. A message that cannot be queued is dropped loudly: logged at
ERROR and counted (``dicomgate_atna_messages_total{outcome="dropped"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dicomgate import metrics
from dicomgate.audit.atna import AuditSource, audit_message
from dicomgate.audit.service import AuditEntry
from dicomgate.errors import ConfigurationError
from dicomgate.settings import Settings

log = logging.getLogger(__name__)

FACILITY_SECURITY = 10  # RFC 5424 §6.2.1: security/authorization messages (IHE ITI-20)
SEVERITY_NOTICE = 5
SEVERITY_WARNING = 4
APP_NAME = "dicomgate"
MSGID = "IHE+RFC-3881"  # IHE ITI TF-2 §3.20.7: DICOM Audit Messages over syslog
BOM = b"\xef\xbb\xbf"  # RFC 5424 §6.4: MSG-UTF8 starts with the byte order mark
DEFAULT_PORTS = {"tcp": 601, "tls": 6514}
CONNECT_TIMEOUT = 10.0
MAX_PAUSE = 30.0


def syslog_frame(message: bytes, entry: AuditEntry, *, hostname: str) -> bytes:
    """One RFC 5424 message carrying ``message``, framed by octet counting (RFC 6587 §3.4.1)."""
    severity = SEVERITY_NOTICE if entry.outcome == "success" else SEVERITY_WARNING
    header = (
        f"<{FACILITY_SECURITY * 8 + severity}>1 {entry.at.isoformat()} "
        f"{hostname[:255] or '-'} {APP_NAME} {os.getpid()} {MSGID} -"
    )
    body = header.encode("ascii", "replace") + b" " + BOM + message
    return f"{len(body)} ".encode("ascii") + body


@dataclass(frozen=True)
class SyslogTarget:
    """Where the audit repository listens, and how to reach it."""

    host: str
    port: int
    tls: ssl.SSLContext | None


def syslog_target(
    url: str,
    *,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> SyslogTarget:
    """Parse ``tcp://host[:port]`` or ``tls://host[:port]``; ConfigurationError otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ConfigurationError(
            f"DICOMGATE_ATNA_SYSLOG_URL must be tcp://host[:port] or tls://host[:port], not {url!r}"
        )
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise ConfigurationError(
            f"DICOMGATE_ATNA_SYSLOG_URL has an invalid port: {url!r}"
        ) from None
    context = None
    if scheme == "tls":
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if cert_file is not None:  # ATNA secure nodes authenticate each other (RFC 5425 §5)
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return SyslogTarget(host=parts.hostname, port=port, tls=context)


class AtnaExporter:
    """Queues audit entries as syslog frames and sends them from one background task."""

    def __init__(self, target: SyslogTarget, source: AuditSource, *, queue_size: int) -> None:
        self.target = target
        self.source = source
        self.hostname = source.host or socket.gethostname()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    def start(self) -> None:
        """Start the sender (in the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._send_forever())

    def submit(self, entry: AuditEntry) -> None:
        """Queue one entry; never blocks, never raises."""
        try:
            frame = syslog_frame(audit_message(entry, self.source), entry, hostname=self.hostname)
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            metrics.ATNA_MESSAGES.labels("dropped").inc()
            log.error(
                "ATNA audit message dropped: %d messages are waiting for %s:%d",
                self._queue.qsize(),
                self.target.host,
                self.target.port,
            )
        except Exception:  # a bug in building the message must not fail the request
            metrics.ATNA_MESSAGES.labels("dropped").inc()
            log.exception("ATNA audit message dropped: it could not be built")

    async def stop(self, *, flush_timeout: float = 5.0) -> None:
        """Give the queue a moment to drain, then stop the sender and close the connection."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=flush_timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def _send_forever(self) -> None:
        while True:
            frame = await self._queue.get()
            pause = 0.5
            while True:
                try:
                    await self._send(frame)
                    break
                except (OSError, TimeoutError) as exc:
                    metrics.ATNA_MESSAGES.labels("retried").inc()
                    log.warning(
                        "ATNA audit repository %s:%d unreachable (%s); retrying in %.1f s",
                        self.target.host,
                        self.target.port,
                        type(exc).__name__,
                        pause,
                    )
                    await self._close()
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, MAX_PAUSE)
            metrics.ATNA_MESSAGES.labels("sent").inc()
            self._queue.task_done()

    async def _send(self, frame: bytes) -> None:
        writer = self._writer
        if writer is None:
            _reader, connected = await asyncio.wait_for(
                asyncio.open_connection(
                    self.target.host,
                    self.target.port,
                    ssl=self.target.tls,
                    server_hostname=self.target.host if self.target.tls else None,
                ),
                timeout=CONNECT_TIMEOUT,
            )
            self._writer = writer = connected
        writer.write(frame)
        await asyncio.wait_for(writer.drain(), timeout=CONNECT_TIMEOUT)

    async def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), timeout=2)


def atna_exporter(settings: Settings) -> AtnaExporter | None:
    """The exporter the settings ask for (None when ATNA export is off)."""
    if not settings.atna_syslog_url:
        return None
    target = syslog_target(
        settings.atna_syslog_url,
        ca_file=settings.atna_tls_ca_file,
        cert_file=settings.atna_tls_cert_file,
        key_file=settings.atna_tls_key_file,
    )
    source = AuditSource(
        source_id=settings.atna_source_id,
        enterprise_site_id=settings.atna_enterprise_site_id,
    )
    return AtnaExporter(target, source, queue_size=settings.atna_queue_size)
