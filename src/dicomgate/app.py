"""``create_app(settings)``: the FastAPI application and the lifespan that owns its resources."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from dicomgate import __version__
from dicomgate.audit.middleware import AuditMiddleware
from dicomgate.audit.router import router as audit_router
from dicomgate.audit.syslog import atna_exporter
from dicomgate.audit.trail import AuditTrail
from dicomgate.auth.dependencies import AuthorizeDep
from dicomgate.auth.policy import required_scope
from dicomgate.auth.service import JwtVerifier
from dicomgate.browse.router import router as browse_router
from dicomgate.conversions.background import conversion_runner
from dicomgate.conversions.router import router as conversions_router
from dicomgate.dicomweb.query_router import router as dicomweb_query_router
from dicomgate.dicomweb.rendered_router import router as dicomweb_rendered_router
from dicomgate.dicomweb.retrieve_router import router as dicomweb_retrieve_router
from dicomgate.dicomweb.router import router as dicomweb_router
from dicomgate.errors import (
    ConfigurationError,
    ConversionQueueUnavailable,
    RequestHeaderTooLarge,
    install_error_handlers,
)
from dicomgate.health import router as health_router
from dicomgate.ingest.router import router as ingest_router
from dicomgate.metrics import MetricsMiddleware
from dicomgate.metrics import router as metrics_router
from dicomgate.migrations import ensure_database_current
from dicomgate.patients.router import router as patients_router
from dicomgate.redaction import redact_url
from dicomgate.redirects import RelativeRedirects
from dicomgate.requestid import RequestIdMiddleware
from dicomgate.rules.config import load_rules
from dicomgate.rules.router import router as rules_router
from dicomgate.rules.service import RulesLoop
from dicomgate.runtime import open_runtime
from dicomgate.settings import Settings
from dicomgate.statistics.router import router as statistics_router

log = logging.getLogger(__name__)

# What the codec workers run, imported in each at startup (``WorkerPool.warm``).
WORKER_MODULES = (
    "dicomgate.codec.native",
    "dicomgate.codec.transcode",
    "dicomgate.conversions.transcoding",
    "dicomgate.codec.rendered",
    "dicomgate.dicomweb.dicomjson",
    "dicomgate.ingest.worker",
)

TAGS = [
    {"name": "health", "description": "Is the service and everything it depends on working?"},
    {"name": "browse", "description": "The Orthanc Patient → Study → Series → Instance hierarchy."},
    {"name": "patients", "description": "The patient cache that uploads stamp demographics from."},
    {"name": "ingest", "description": "Uploads: validate, stamp the patient, transcode, store."},
    {
        "name": "dicomweb",
        "description": (
            "DICOMweb (PS3.18): QIDO-RS search, WADO-RS retrieve (stored HTJ2K served as is or "
            "decoded, negotiated per instance) and STOW-RS store (transcoded to HTJ2K)."
        ),
    },
    {"name": "conversions", "description": "Admin: convert stored studies to HTJ2K in place."},
    {"name": "rules", "description": "Admin: compression rules for what arrives in Orthanc."},
    {"name": "audit", "description": "Admin: who did what to which resource, and the outcome."},
    {"name": "statistics", "description": "Orthanc's size and what dicomgate's HTJ2K saved."},
]


def check_auth_configuration(settings: Settings) -> None:
    """Secure by default: refuse to build an app that would serve PHI to anyone."""
    if not settings.auth_enabled:
        log.warning(
            "AUTHENTICATION IS DISABLED (DICOMGATE_AUTH_ENABLED=false): every caller can read, "
            "upload and delete patient images. Use this only for local development on loopback."
        )
        return
    if not (settings.jwt_secret or settings.jwks_url or settings.jwks_file):
        raise ConfigurationError(
            "Authentication is on but no JWT key is configured: set DICOMGATE_JWT_SECRET "
            "(HS256), DICOMGATE_JWKS_URL or DICOMGATE_JWKS_FILE (RS256/ES256); or, for local "
            "development only, DICOMGATE_AUTH_ENABLED=false"
        )
    if settings.jwt_secret and len(settings.jwt_secret.get_secret_value().encode()) < 32:
        # RFC 7518 §3.2: an HS256 key must have at least 256 bits.
        raise ConfigurationError("DICOMGATE_JWT_SECRET is too short: use at least 32 bytes")
    if not settings.jwt_audience:
        # RFC 7519 §4.1.3: without an audience, a token the identity provider issued for any
        # other application would open dicomgate too.
        raise ConfigurationError(
            "JWTs are accepted but DICOMGATE_JWT_AUDIENCE is not set: set it to the 'aud' your "
            "identity provider puts in tokens meant for dicomgate (tokens for other audiences "
            "are then refused)"
        )


# What a viewer on another origin may read of an answer (besides the CORS-safelisted ones).
CORS_EXPOSED_HEADERS = [
    "Content-Range",
    "Content-Length",
    "Accept-Ranges",
    "Content-Location",
    "Warning",
    "WWW-Authenticate",
    "X-Request-ID",
]
AUTH_RESPONSES = (
    ("401", "Unauthorized: no credential, or one that does not verify"),
    ("403", "Forbidden: the caller lacks the route's scope"),
)
ERROR_BODY_REF = {"$ref": "#/components/schemas/ErrorBody"}
# Answered by `dicomgate serve`'s HTTP protocol (dicomgate.server) before any route runs.
HEAD_TOO_LARGE = {
    "description": "RequestHeaderTooLarge: the request line and headers pass "
    "DICOMGATE_MAX_HEADER_BYTES",
    "content": {
        "application/json": {
            "schema": ERROR_BODY_REF,
            "example": {
                "success": False,
                "error": RequestHeaderTooLarge.default_message,
                "type": "RequestHeaderTooLarge",
            },
        }
    },
}


def _document_validation_error(operation: dict[str, Any]) -> None:
    """A 422 that FastAPI documents as ``HTTPValidationError`` is answered as ErrorBody.

    errors.py renders request validation failures in the one error shape (type
    ``ValidationError``), not FastAPI's ``{"detail": [...]}``: say so, or clients generated from
    the schema type those errors wrongly.
    """
    content = operation.get("responses", {}).get("422", {}).get("content", {})
    body = content.get("application/json", {})
    if body.get("schema") == {"$ref": "#/components/schemas/HTTPValidationError"}:
        body["schema"] = ERROR_BODY_REF


def _document_unparsable_body(operation: dict[str, Any]) -> None:
    """A JSON body that is not JSON is answered 400 (before validation): say so."""
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        operation.setdefault("responses", {}).setdefault(
            "400",
            {
                "description": "The body is not valid JSON",
                "content": {"application/json": {"schema": ERROR_BODY_REF}},
            },
        )


def _document_security(app: FastAPI) -> None:
    """Per-operation OpenAPI security from the one policy table (public routes have none)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                _document_validation_error(operation)
                operation.setdefault("responses", {}).setdefault("431", HEAD_TOO_LARGE)
                _document_unparsable_body(operation)
                scope = required_scope(method, path)
                if scope is None:
                    operation.pop("security", None)
                elif isinstance(scope, str):
                    operation["security"] = [{"bearer": [scope]}, {"apiKey": [scope]}]
                    for code, text in AUTH_RESPONSES:
                        operation.setdefault("responses", {}).setdefault(
                            code,
                            {
                                "description": text,
                                "content": {"application/json": {"schema": ERROR_BODY_REF}},
                            },
                        )
                    operation["description"] = (
                        operation.get("description", "") + f"\n\nRequires scope `{scope}`."
                    ).strip()
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; nothing is opened until the lifespan starts."""
    settings = settings or Settings()
    check_auth_configuration(settings)
    rules = load_rules(settings.rules_file)  # a bad rules file stops the start, clearly
    atna = atna_exporter(settings)  # a wrong ATNA setting stops the start, not a request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_database_current(settings)  # refuse to serve on an unmigrated database
        async with open_runtime(settings) as runtime:
            app.state.runtime = runtime
            warming = runtime.pool.warm(WORKER_MODULES)  # in the background
            trail = app.state.audit_trail = AuditTrail(runtime.sessions, atna)
            trail.start()
            if atna is not None:
                atna.start()
            try:
                async with conversion_runner(runtime) as jobs:
                    app.state.conversion_jobs = jobs
                    log.info(
                        "dicomgate %s: Orthanc at %s, %d workers",
                        __version__,
                        redact_url(settings.orthanc_url),
                        settings.workers,
                    )
                    if settings.resume_conversions_on_start:
                        await jobs.resume_unfinished()
                    if (
                        runtime.engine.dialect.name == "postgresql"
                        and settings.resume_conversions_every
                    ):
                        jobs.watch(every=settings.resume_conversions_every)

                    async def start_job(job_id: int) -> None:
                        try:
                            await jobs.start(job_id, concurrency=2)
                        except ConversionQueueUnavailable as exc:  # the others still start;
                            log.warning("%s", exc.message)  # this one resumes at the sweep

                    follower = None
                    if rules is not None and settings.rules_follower:
                        follower = RulesLoop(runtime, rules, start_job)
                        follower.start()
                    try:
                        yield
                    finally:
                        if follower is not None:
                            await follower.stop()  # first: it creates jobs
                    # Leaving the block stops the jobs, before the runtime closes under them.
            finally:
                warming.cancel()
                await trail.stop()  # the rows still queued, before the engine closes
                if atna is not None:
                    await atna.stop()

    app = FastAPIOffline(
        title="dicomgate",
        version=__version__,
        summary="Lossless HTJ2K ingest, browse and migration in front of an Orthanc PACS.",
        openapi_tags=TAGS,
        lifespan=lifespan,
        dependencies=[AuthorizeDep],
    )
    app.state.settings = settings
    app.state.rules = rules
    app.state.jwt_verifier = JwtVerifier(settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            # Range: progressive HTJ2K viewers fetch a codestream prefix first.
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID", "Range"],
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
    install_error_handlers(app)
    for router in (
        health_router,
        browse_router,
        patients_router,
        ingest_router,
        dicomweb_router,
        dicomweb_query_router,
        dicomweb_retrieve_router,
        dicomweb_rendered_router,
        conversions_router,
        rules_router,
        audit_router,
        statistics_router,
        metrics_router,
    ):
        app.include_router(router)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(MetricsMiddleware)  # inside the request id: its access line carries it
    app.add_middleware(RelativeRedirects)  # the slash redirect names no client-chosen host
    app.add_middleware(RequestIdMiddleware)  # ids on audit writes and errors too
    if settings.trusted_proxies:
        # Outermost, so every layer sees the client the trusted proxy forwarded; without it
        # the client is the socket peer, whatever X-Forwarded-For says.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    _document_security(app)
    return app
