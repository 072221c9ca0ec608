"""Admin API for batch conversions: start, watch, list and cancel jobs."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from dicomgate.audit.context import note_touched
from dicomgate.conversions import repository, service
from dicomgate.conversions.background import JobRunner
from dicomgate.conversions.plan import make_selection
from dicomgate.conversions.schemas import ConversionJobList, ConversionJobOut, ConversionRequest
from dicomgate.dependencies import SessionDep, SettingsDep
from dicomgate.errors import (
    BadRequest,
    ConversionJobNotFound,
    ConversionQueueUnavailable,
    error_responses,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/ris/conversions", tags=["conversions"])
# Job IDs are the table's 32-bit integer keys: a larger number is a 422, never a database error.
JobId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The job's ID.")]


@router.post(
    "/",
    response_model=ConversionJobOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a conversion job (runs in the background)",
    operation_id="startConversion",
    responses=error_responses(BadRequest, ConversionQueueUnavailable),
)
async def start_conversion(
    body: ConversionRequest, session: SessionDep, settings: SettingsDep, request: Request
) -> ConversionJobOut:
    note_touched(
        request,
        patient_ids=[body.patient_id or ""],
        study_instance_uids=[body.study_instance_uid or ""],
    )
    selection = make_selection(
        study=body.study_instance_uid,
        patient=body.patient_id,
        all_studies=body.all,
    )
    job = await repository.create_job(
        session,
        selection=selection,
        dry_run=body.dry_run,
        sample_size=service.resolve_sample_size(settings, sample=body.sample, exact=body.exact),
    )
    out = ConversionJobOut.model_validate(job)
    # The one commit outside the session dependency: the background run (its own session)
    # must see the job, and the dependency commits only after this function returns.
    await session.commit()
    jobs: JobRunner = request.app.state.conversion_jobs
    # Queued before the answer (PostgreSQL): the queue refusing it is a 503, the job marked
    # interrupted for the sweep to queue again, never a 202 for a job nothing will run.
    await jobs.start(job.id, concurrency=body.concurrency)
    return out


@router.get(
    "/",
    response_model=ConversionJobList,
    summary="List conversion jobs, newest first",
    operation_id="listConversions",
)
async def list_conversions(
    session: SessionDep, limit: int = Query(default=100, ge=1, le=1000)
) -> ConversionJobList:
    jobs = await repository.list_jobs(session, limit=limit)
    return ConversionJobList(jobs=[ConversionJobOut.model_validate(j) for j in jobs])


@router.get(
    "/{job_id}/",
    response_model=ConversionJobOut,
    summary="One conversion job: state, counts, bytes, current study, errors",
    operation_id="getConversion",
    responses=error_responses(ConversionJobNotFound),
)
async def get_conversion(job_id: JobId, session: SessionDep) -> ConversionJobOut:
    return ConversionJobOut.model_validate(await repository.get_job(session, job_id))


@router.post(
    "/{job_id}/cancel/",
    response_model=ConversionJobOut,
    summary="Cancel a conversion job after the instances in flight",
    operation_id="cancelConversion",
    responses=error_responses(ConversionJobNotFound),
)
async def cancel_conversion(job_id: JobId, session: SessionDep) -> ConversionJobOut:
    return ConversionJobOut.model_validate(await service.request_cancel(session, job_id))
