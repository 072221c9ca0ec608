"""``GET /api/ris/health/``: Orthanc, database, HTJ2K codec and worker pool, each checked."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dicomgate import __version__
from dicomgate.auth.dependencies import optional_caller
from dicomgate.codec.capabilities import codec_status
from dicomgate.codec.pool import ping as pool_ping
from dicomgate.db import check_writable, database_reason
from dicomgate.dependencies import RuntimeDep
from dicomgate.errors import DicomgateError, ErrorBody

router = APIRouter(tags=["health"])

AUTH_DISABLED_WARNING = (
    "AUTHENTICATION IS DISABLED (DICOMGATE_AUTH_ENABLED=false): anyone who can reach this "
    "service can read, upload and delete patient images"
)


class Check(BaseModel):
    ok: bool
    detail: str = Field(description="What was found, or why the check failed.")


class CodecCheck(Check):
    encoder: str = Field(description="htj2k, or jpeg2000 when HTJ2K encoding is unavailable.")
    target_transfer_syntax: str
    fallback: bool = Field(description="True when HTJ2K encoding is unavailable.")


class OrthancCheck(Check):
    version: str | None = Field(
        default=None, description="Orthanc's version (authenticated callers only)."
    )


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    version: str | None = Field(
        description="dicomgate's version (authenticated callers only; null otherwise)."
    )
    orthanc: OrthancCheck
    database: Check
    codec: CodecCheck
    workers: Check
    audit: Check = Field(
        default_factory=lambda: Check(ok=True, detail="writing"),
        description="False when the last audit row could not be written (until one is).",
    )
    warnings: list[str] = Field(
        default_factory=list, description="Unsafe settings in force (e.g. authentication off)."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "status": "ok",
                    "version": __version__,
                    "orthanc": {"ok": True, "detail": "reachable", "version": "1.10.1"},
                    "database": {"ok": True, "detail": "sqlite reachable and writable"},
                    "codec": {
                        "ok": True,
                        "detail": "OpenJPH 0.18",
                        "encoder": "htj2k",
                        "target_transfer_syntax": "1.2.840.10008.1.2.4.201",
                        "fallback": False,
                    },
                    "workers": {"ok": True, "detail": "2 workers answering"},
                    "audit": {"ok": True, "detail": "writing"},
                }
            ]
        }
    }


async def _check_orthanc(runtime: RuntimeDep) -> OrthancCheck:
    try:
        system = await runtime.orthanc.system()
    except DicomgateError as exc:
        return OrthancCheck(ok=False, detail=exc.message)
    return OrthancCheck(ok=True, detail="reachable", version=str(system.get("Version")))


async def _check_database(runtime: RuntimeDep) -> Check:
    """Reachable and writable: a read-only or deleted database fails here, not on an upsert."""
    dialect = runtime.engine.dialect.name
    try:
        await asyncio.wait_for(check_writable(runtime.engine), timeout=5)
    except DicomgateError as exc:  # e.g. the SQLite file deleted under the running service
        return Check(ok=False, detail=exc.message)
    except TimeoutError:
        return Check(ok=False, detail=f"{dialect} did not answer within 5 s")
    except Exception as exc:  # any driver error means "not usable"; say what the driver said
        return Check(ok=False, detail=f"{dialect} not writable: {database_reason(exc)}")
    return Check(ok=True, detail=f"{dialect} reachable and writable")


async def _check_workers(runtime: RuntimeDep) -> Check:
    try:
        await runtime.pool.run(pool_ping, timeout=10)
    except DicomgateError as exc:
        return Check(ok=False, detail=exc.message)
    return Check(ok=True, detail=f"{runtime.pool.workers} workers answering")


@router.get(
    "/api/ris/health/",
    response_model=HealthReport,
    summary="Health of dicomgate and its dependencies",
    operation_id="getHealth",
    responses={
        503: {"model": HealthReport, "description": "One or more checks failed"},
        500: {"model": ErrorBody},
    },
)
async def health(runtime: RuntimeDep, request: Request) -> JSONResponse:
    """200 when Orthanc, the database, the HTJ2K codec, the worker pool and the audit trail all
    work; else 503.

    Public, for probes and status badges: anonymous callers get the verdicts only. Versions
    (of dicomgate, Orthanc and the codec) and what a failure was (a refused Orthanc password,
    a database path) are for authenticated callers (any valid bearer token or API key).
    """
    orthanc, database, workers = await asyncio.gather(
        _check_orthanc(runtime), _check_database(runtime), _check_workers(runtime)
    )
    status = codec_status(runtime.settings.target_syntax)
    codec = CodecCheck(
        ok=status.available,
        detail=status.detail,
        encoder=status.encoder,
        target_transfer_syntax=status.transfer_syntax,
        fallback=status.fallback,
    )
    trail = getattr(request.app.state, "audit_trail", None)
    if trail is not None:
        await trail.flush()  # the rows queued so far decide whether the trail is writing
    audit = (
        Check(ok=True, detail="writing")
        if trail is None or trail.healthy
        else Check(ok=False, detail=trail.failure_detail)
    )
    healthy = (
        all(c.ok for c in (orthanc, database, workers, audit)) and codec.ok and not codec.fallback
    )
    report = HealthReport(
        status="ok" if healthy else "degraded",
        version=__version__,
        orthanc=orthanc,
        database=database,
        codec=codec,
        workers=workers,
        audit=audit,
        warnings=[] if runtime.settings.auth_enabled else [AUTH_DISABLED_WARNING],
    )
    if await optional_caller(request) is None:
        report = anonymous(report)
    return JSONResponse(status_code=200 if healthy else 503, content=report.model_dump())


def anonymous(report: HealthReport) -> HealthReport:
    """The report without versions or failure details: what a stranger may read."""

    def verdict(check: Check) -> str:
        return "ok" if check.ok else "failing (details for authenticated callers)"

    return report.model_copy(
        update={
            "version": None,
            "orthanc": OrthancCheck(ok=report.orthanc.ok, detail=verdict(report.orthanc)),
            "database": Check(ok=report.database.ok, detail=verdict(report.database)),
            "codec": report.codec.model_copy(update={"detail": verdict(report.codec)}),
            "workers": Check(ok=report.workers.ok, detail=verdict(report.workers)),
        }
    )
