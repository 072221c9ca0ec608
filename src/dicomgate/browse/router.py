"""``/api/orthanc/…``: browse, download, preview and delete the Orthanc hierarchy (thin routes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from dicomgate.audit.context import audit_notes, note_touched
from dicomgate.browse import service, touched
from dicomgate.browse.schemas import (
    DeleteResult,
    InstanceSummary,
    PatientImages,
    PatientSummary,
    SeriesSummary,
    StudySummary,
)
from dicomgate.dependencies import OrthancDep, PoolDep, SessionDep, SettingsDep
from dicomgate.errors import (
    ORTHANC_ERRORS,
    FrameNotFound,
    ImageTooLarge,
    InvalidCodestream,
    InvalidDicom,
    NotFound,
    UnprocessableInput,
    WorkerFailure,
    WorkerMemoryExceeded,
    WorkerTimeout,
    error_responses,
)
from dicomgate.orthanc_models import Level
from dicomgate.patients.schemas import PatientId

router = APIRouter(prefix="/api/orthanc", tags=["browse"])


def get_tag_cache(request: Request) -> service.ImageTagCache:
    """The process's cache of non-indexed image tags (created on first use)."""
    cache: service.ImageTagCache | None = getattr(request.app.state, "browse_tag_cache", None)
    if cache is None:
        cache = service.ImageTagCache()
        request.app.state.browse_tag_cache = cache
    return cache


TagCacheDep = Annotated[service.ImageTagCache, Depends(get_tag_cache)]
LISTING_ERRORS = error_responses(UnprocessableInput, *ORTHANC_ERRORS)
CHILD_LISTING_ERRORS = error_responses(NotFound, UnprocessableInput, *ORTHANC_ERRORS)


@router.get(
    "/patients/",
    response_model=list[PatientSummary],
    summary="List the patients stored in Orthanc",
    operation_id="listOrthancPatients",
    responses=error_responses(*ORTHANC_ERRORS),
)
async def list_patients(
    request: Request,
    orthanc: OrthancDep,
    patient_id: Annotated[
        PatientId | None,
        Query(
            description="Only the patients with this DICOM Patient ID (0010,0020), exact match "
            "(no wildcards); their `orthancId` is what the other listings take.",
        ),
    ] = None,
) -> list[PatientSummary]:
    """Every patient, with its number of studies (or those with one DICOM Patient ID)."""
    patients = await service.list_patients(orthanc, patient_id=patient_id)
    if patient_id:  # a lookup of one patient names them; the whole list names nobody
        note_touched(
            request,
            patient_ids=[p.patientId or "" for p in patients],
            orthanc_ids=[p.orthancId for p in patients],
        )
    return patients


@router.get(
    "/studies/",
    response_model=list[StudySummary],
    summary="List the studies of a patient",
    operation_id="listOrthancStudies",
    responses=CHILD_LISTING_ERRORS,
)
async def list_studies(
    request: Request,
    orthanc: OrthancDep,
    patient_id: Annotated[
        str,
        Query(
            description="Orthanc ID of the patient (`orthancId` in the patient listing; "
            "`/api/orthanc/patients/?patient_id=` finds it from the DICOM Patient ID)."
        ),
    ],
) -> list[StudySummary]:
    """The patient's studies, newest first, with their number of series."""
    audit_notes(request).add(await touched.subtree(orthanc, "patients", patient_id, below=()))
    studies = await service.list_studies(orthanc, patient_id=patient_id)
    note_touched(
        request,
        study_instance_uids=[s.studyInstanceUID or "" for s in studies],
        orthanc_ids=[s.orthancId for s in studies],
    )
    return studies


@router.get(
    "/series/",
    response_model=list[SeriesSummary],
    summary="List the series of a study",
    operation_id="listOrthancSeries",
    responses=CHILD_LISTING_ERRORS,
)
async def list_series(
    request: Request,
    orthanc: OrthancDep,
    study_id: Annotated[str, Query(description="Orthanc ID of the study.")],
) -> list[SeriesSummary]:
    """The study's series, by series number, with modality, description and instance count."""
    audit_notes(request).add(await touched.subtree(orthanc, "studies", study_id, below=()))
    series = await service.list_series(orthanc, study_id=study_id)
    note_touched(
        request,
        series_instance_uids=[s.seriesInstanceUID or "" for s in series],
        orthanc_ids=[s.orthancId for s in series],
    )
    return series


@router.get(
    "/instances/",
    response_model=list[InstanceSummary],
    summary="List the instances of a series",
    operation_id="listOrthancInstances",
    responses=CHILD_LISTING_ERRORS,
)
async def list_instances(
    request: Request,
    orthanc: OrthancDep,
    settings: SettingsDep,
    cache: TagCacheDep,
    series_id: Annotated[str, Query(description="Orthanc ID of the series.")],
) -> Response:
    """The series' instances sorted by instance number, then SOP Instance UID."""
    audit_notes(request).add(await touched.subtree(orthanc, "series", series_id, below=()))
    instances = await service.list_instances(
        orthanc, series_id=series_id, cache=cache, concurrency=settings.orthanc_concurrency
    )
    note_touched(
        request,
        sop_instance_uids=[i.sopInstanceUID or "" for i in instances],
        orthanc_ids=[i.orthancId for i in instances],
    )
    # Serialized once, straight to JSON: large series make FastAPI's re-validation visible.
    return Response(service.INSTANCE_LIST.dump_json(instances), media_type="application/json")


@router.get(
    "/instances/{instance_id}/file/",
    response_class=StreamingResponse,
    summary="Download the stored DICOM file",
    operation_id="downloadOrthancInstance",
    responses={
        200: {
            "content": {"application/dicom": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The DICOM file exactly as Orthanc stores it.",
        },
        **error_responses(NotFound, *ORTHANC_ERRORS),
    },
)
async def download_instance(
    request: Request, orthanc: OrthancDep, instance_id: str
) -> StreamingResponse:
    """Stream the file byte for byte from Orthanc (never buffered whole)."""
    audit_notes(request).add(await touched.instance(orthanc, instance_id))
    download = await service.open_instance_file(orthanc, instance_id=instance_id)
    headers = {"Content-Disposition": f'attachment; filename="{download.filename}"'}
    if download.content_length is not None:
        headers["Content-Length"] = download.content_length
    return StreamingResponse(download.chunks, media_type="application/dicom", headers=headers)


@router.get(
    "/instances/{instance_id}/preview/",
    response_class=Response,
    summary="PNG preview of one frame",
    operation_id="previewOrthancInstance",
    responses={
        200: {
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            "description": "8-bit PNG, rendered by dicomgate (works for HTJ2K and JPEG 2000).",
        },
        **error_responses(
            NotFound,
            FrameNotFound,
            InvalidDicom,
            UnprocessableInput,
            ImageTooLarge,
            InvalidCodestream,
            WorkerFailure,
            WorkerMemoryExceeded,
            WorkerTimeout,
            *ORTHANC_ERRORS,
        ),
    },
)
async def preview_instance(
    request: Request,
    orthanc: OrthancDep,
    pool: PoolDep,
    settings: SettingsDep,
    instance_id: str,
    frame: Annotated[int, Query(ge=0, description="Zero-based frame index.")] = 0,
) -> Response:
    """Decode one frame, apply Modality LUT, VOI (window or min–max) and render it as PNG."""
    audit_notes(request).add(await touched.instance(orthanc, instance_id))
    png = await service.render_instance_preview(
        orthanc, pool, instance_id=instance_id, frame=frame, max_pixels=settings.max_pixels
    )
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


@router.get(
    "/patients/{patient_id}/images/",
    response_model=PatientImages,
    summary="Every image of a patient, flattened, with preview URLs",
    operation_id="listOrthancPatientImages",
    responses=error_responses(NotFound, *ORTHANC_ERRORS),
)
async def list_patient_images(
    request: Request, orthanc: OrthancDep, patient_id: str
) -> PatientImages:
    """The patient's instances by study, series and instance number."""
    audit_notes(request).add(
        await touched.subtree(orthanc, "patients", patient_id, below=("studies",))
    )
    images = await service.list_patient_images(orthanc, patient_id=patient_id)
    note_touched(
        request,
        orthanc_ids=[i for image in images.images for i in (image.series_id, image.instance_id)],
    )
    return images


def _delete_route(level: Level, noun: str, operation_id: str) -> None:
    async def delete(
        request: Request, orthanc: OrthancDep, session: SessionDep, orthanc_id: str
    ) -> DeleteResult:
        # Read what is deleted before deleting it: afterwards Orthanc cannot say.
        audit_notes(request).add(await touched.subtree(orthanc, level, orthanc_id))
        return await service.delete_resource(
            orthanc, level=level, orthanc_id=orthanc_id, session=session
        )

    delete.__doc__ = (
        f"Delete the {noun}; parents left empty are deleted too, and the answer names the "
        "nearest ancestor that remains (null if none)."
    )
    router.add_api_route(
        f"/{level}/{{orthanc_id}}/",
        delete,
        methods=["DELETE"],
        response_model=DeleteResult,
        summary=f"Delete {'an' if noun[0] in 'aeiou' else 'a'} {noun}",
        operation_id=operation_id,
        responses=error_responses(NotFound, *ORTHANC_ERRORS),
    )


_delete_route("patients", "patient", "deleteOrthancPatient")
_delete_route("studies", "study", "deleteOrthancStudy")
_delete_route("series", "series", "deleteOrthancSeries")
_delete_route("instances", "instance", "deleteOrthancInstance")
