"""Prometheus metrics: the instruments, the HTTP middleware that feeds the request ones, and
``GET /metrics``.

Instruments live at module level in prometheus-client's default registry (one per process; the
service runs as one uvicorn process, so no multiprocess mode is needed). Label values are
bounded on purpose: routes are templates (``/api/orthanc/instances/{instance_id}/file/``), never
raw paths, so no patient ID or Orthanc ID ever becomes a label (no PHI, no unbounded series).

The middleware also writes the access log line (method, route template, status, duration,
bytes), replacing uvicorn's, whose raw path and query string can carry patient IDs and names.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from dicomgate.codec.transcode import TranscodeResult

log = logging.getLogger("dicomgate.access")

# No *_created series: one timestamp per label set is only noise for dashboards.
disable_created_metrics()  # type: ignore[no-untyped-call]

UNMATCHED = "<unmatched>"  # the route label of requests no route matched (404s)

HTTP_REQUESTS = Counter(
    "dicomgate_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "dicomgate_http_request_duration_seconds",
    "Time from the request's arrival to its last response byte, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
HTTP_IN_PROGRESS = Gauge("dicomgate_http_requests_in_progress", "HTTP requests being served.")
HTTP_BYTES = Counter(
    "dicomgate_http_bytes_total",
    "Body bytes received from (direction=in) and sent to (out) HTTP clients, by route template.",
    ["direction", "route"],
)
INSTANCES_INGESTED = Counter(
    "dicomgate_instances_ingested_total",
    "Instances stored through the upload routes: outcome=converted (HTJ2K) or unchanged "
    "(passed through, see dicomgate_pass_throughs_total).",
    ["outcome"],
)
INGEST_BYTES = Counter(
    "dicomgate_ingest_bytes_total",
    "Bytes of uploaded instances: stage=received (as uploaded) and stored (sent to Orthanc).",
    ["stage"],
)
TRANSCODE_SECONDS = Histogram(
    "dicomgate_transcode_seconds",
    "Worker time per instance (parse, encode, verify), by path: ingest or conversion.",
    ["path"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
PASS_THROUGHS = Counter(
    "dicomgate_pass_throughs_total",
    "Instances kept as they were instead of transcoded, by path and reason.",
    ["path", "reason"],
)
INSTANCES_CONVERTED = Counter(
    "dicomgate_conversion_instances_total",
    "Stored instances handled by conversion jobs: converted, skipped, failed, planned (dry run).",
    ["outcome"],
)
CONVERSION_BYTES = Counter(
    "dicomgate_conversion_bytes_total",
    "Bytes of instances converted in place: stage=before and after.",
    ["stage"],
)
ORTHANC_ERRORS = Counter(
    "dicomgate_orthanc_errors_total",
    "Failed Orthanc calls by kind (OrthancUnavailable, OrthancTimeout, OrthancError, "
    "OrthancRejectedFile, ...).",
    ["kind"],
)
AUDIT_WRITE_FAILURES = Counter(
    "dicomgate_audit_write_failures_total",
    "Audit rows that could not be written (each also logged at ERROR; health turns 503).",
)
ATNA_MESSAGES = Counter(
    "dicomgate_atna_messages_total",
    "DICOM Audit Messages for the ATNA audit repository: sent, retried (a send failed and is "
    "tried again), dropped (the queue was full: logged at ERROR).",
    ["outcome"],
)
POOL_WORKERS = Gauge("dicomgate_pool_workers", "Worker processes in the codec pool.")
POOL_PENDING = Gauge(
    "dicomgate_pool_tasks_pending", "Codec tasks submitted and not finished (running + queued)."
)
POOL_QUEUE_DEPTH = Gauge(
    "dicomgate_pool_queue_depth", "Codec tasks waiting for a free worker (pending − workers)."
)

RULES_BACKLOG = Gauge(
    "dicomgate_rules_backlog",
    "Series waiting for a compression rule (state=waiting) or converted by its job "
    '(state=queued), all replicas; rule="" while not decided yet.',
    ["rule", "state"],
)
RULES_LAG_CHANGES = Gauge(
    "dicomgate_rules_lag_changes",
    "Orthanc changes not yet taken by the compression rules' follower (/changes).",
)
RULES_LAG_SECONDS = Gauge(
    "dicomgate_rules_lag_seconds",
    "Age of the oldest change in the follower's last batch when it took it (0: none).",
)
RULES_INSTANCES = Gauge(
    "dicomgate_rules_instances",
    "Instances converted, skipped and failed by each compression rule's jobs (all replicas, "
    "from the database).",
    ["rule", "outcome"],
)


# --- Recording helpers (one call per event, from the domain code) ----------------------------
def record_transcode(path: str, result: TranscodeResult) -> None:
    """One instance through the codec: its time (why it was kept is counted where it ends)."""
    TRANSCODE_SECONDS.labels(path).observe(result.elapsed)


def record_ingested(result: TranscodeResult) -> None:
    """One uploaded instance stored in Orthanc (and why it was kept, when it was)."""
    INSTANCES_INGESTED.labels("converted" if result.converted else "unchanged").inc()
    if not result.converted:
        PASS_THROUGHS.labels("ingest", result.reason or "unknown").inc()
    INGEST_BYTES.labels("received").inc(result.original_size)
    INGEST_BYTES.labels("stored").inc(result.size)


def record_conversion(outcome: str, *, reason: str | None, before: int, after: int) -> None:
    """One stored instance handled by a conversion job."""
    INSTANCES_CONVERTED.labels(outcome).inc()
    if outcome == "skipped":
        PASS_THROUGHS.labels("conversion", reason or "unknown").inc()
    elif outcome == "converted":
        CONVERSION_BYTES.labels("before").inc(before)
        CONVERSION_BYTES.labels("after").inc(after)


def record_rules_state(
    *,
    backlog: dict[tuple[str, str], int],
    lag_changes: int,
    by_rule: dict[str, dict[str, int]],
) -> None:
    """The rules' backlog, lag and per-rule counts as the database has them now."""
    RULES_BACKLOG.clear()
    for (rule, state), count in backlog.items():
        RULES_BACKLOG.labels(rule, state).set(count)
    RULES_LAG_CHANGES.set(lag_changes)
    for rule, counts in by_rule.items():
        for outcome, count in counts.items():
            RULES_INSTANCES.labels(rule, outcome).set(count)


def record_orthanc_error(kind: str) -> None:
    ORTHANC_ERRORS.labels(kind).inc()


# --- HTTP middleware ---------------------------------------------------------------------------
def route_template(scope: Scope) -> str:
    """The matched route's path template, or UNMATCHED (raw paths never become labels)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else UNMATCHED


class MetricsMiddleware:
    """Counts, times and sizes every HTTP request; writes one access log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before it answers, the server sends a 500
        received = 0
        sent = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        HTTP_IN_PROGRESS.inc()
        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            HTTP_IN_PROGRESS.dec()
            elapsed = time.perf_counter() - started
            method = scope["method"]
            route = route_template(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            HTTP_BYTES.labels("in", route).inc(received)
            HTTP_BYTES.labels("out", route).inc(sent)
            log.info(
                "%s %s %d %.1f ms in=%d out=%d",
                method,
                route,
                status,
                elapsed * 1000,
                received,
                sent,
                extra={
                    "http_method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                    "bytes_in": received,
                    "bytes_out": sent,
                },
            )


# --- GET /metrics ------------------------------------------------------------------------------
router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    operation_id="getMetrics",
    response_class=Response,
    responses={
        200: {
            "description": "Metrics in the Prometheus text format; no PHI in any label.",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request) -> Response:
    """Requests, instances ingested and converted, bytes, codec time, Orthanc errors, pool."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        pool = runtime.pool
        POOL_WORKERS.set(pool.workers)
        POOL_PENDING.set(pool.pending)
        POOL_QUEUE_DEPTH.set(max(0, pool.pending - pool.workers))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
