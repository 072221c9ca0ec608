"""WADO-RS routes (PS3.18 §10.4): thin — check the UIDs, call a retrieval, answer.

Instances, metadata, frames and bulk data here; rendered and thumbnail resources in
``rendered_router``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from dicomgate.dicomweb import metadata, retrieve
from dicomgate.dicomweb.http import (
    ACCEPT_PARAMETER,
    RangesDep,
    ReaderDep,
    binary_response,
    ranges_of,
    reader_of,
    respond,
    series_uid,
    sop_uid,
    study_uid,
)
from dicomgate.dicomweb.media import DICOM_JSON, accepts_any
from dicomgate.dicomweb.schemas import DICOM_JSON_OBJECT
from dicomgate.errors import (
    ORTHANC_ERRORS,
    BadRequest,
    Conflict,
    DicomgateError,
    FrameNotFound,
    ImageTooLarge,
    InvalidDicom,
    NotAcceptable,
    NotFound,
    RangeNotSatisfiable,
    UnprocessableInput,
    WorkerFailure,
    WorkerPoolUnavailable,
    WorkerTimeout,
    error_responses,
)

router = APIRouter(tags=["dicomweb"])

STUDY = "/dicomweb/studies/{study_instance_uid}"
SERIES = STUDY + "/series/{series_instance_uid}"
INSTANCE = SERIES + "/instances/{sop_instance_uid}"
CODEC_ERRORS: tuple[type[DicomgateError], ...] = (
    InvalidDicom,
    UnprocessableInput,
    ImageTooLarge,
    WorkerFailure,
    WorkerTimeout,
    WorkerPoolUnavailable,
)
READ_ERRORS: tuple[type[DicomgateError], ...] = (
    BadRequest,
    NotFound,
    NotAcceptable,
    Conflict,
    *CODEC_ERRORS,
    *ORTHANC_ERRORS,
)

INSTANCES_DESCRIPTION = """\
WADO-RS Retrieve Instances (PS3.18 §10.4.1.1.1): `multipart/related; type="application/dicom"`,
one Part 10 file per part, streamed (a study is never held in memory). Each part's
Content-Type names its transfer syntax. Negotiation (PS3.18 §8.7), per instance:
`transfer-syntax=*` or the stored syntax → the stored file byte for byte; no transfer-syntax
or `1.2.840.10008.1.2.1` → decoded by dicomgate to Explicit VR Little Endian (bit-exact
pixels; YBR colour becomes RGB); `1.2.840.10008.1.2.4.90` → JPEG 2000 lossless, verified.
406 when an instance can be served in no accepted form (the message lists what can be).
"""
FRAMES_DESCRIPTION = """\
WADO-RS Retrieve Frames (PS3.18 §10.4.1.1.4), frame numbers from 1 (`1,3,5`). Negotiated from
the stored transfer syntax (PS3.18 §8.7): `multipart/related; type=application/octet-stream;
transfer-syntax=*` → the stored codestream as is, each part labelled
`…; transfer-syntax=<stored>`; `image/jphc` or `image/jhc` (single part, or the `accept` query
parameter) → the stored HTJ2K codestream (`.4.201`, or `.4.202` when stored RPCL) with HTTP
Range (206, open and suffix ranges; 416 when unsatisfiable); `application/octet-stream`
without transfer syntax or with `1.2.840.10008.1.2.1` → decoded to native little endian,
bit-exact; `image/jp2` → JPEG 2000 lossless. 404 for a frame number past the last.
"""


def _options(
    operation_id: str,
    summary: str,
    description: str,
    ok: dict[str, Any],
    *,
    ranged: bool = False,
) -> dict[str, Any]:
    """Route options: the 200 body, the errors, and 206/416 where Range applies."""
    responses: dict[int | str, dict[str, Any]] = {200: ok}
    errors = READ_ERRORS
    if ranged:
        responses[206] = {"description": "The requested byte range of a single-part answer."}
        errors = (*READ_ERRORS, FrameNotFound, RangeNotSatisfiable)
    return {
        "summary": summary,
        "operation_id": operation_id,
        "description": description,
        "response_class": Response,
        "responses": responses | error_responses(*errors),
        "openapi_extra": {"parameters": [ACCEPT_PARAMETER]},
    }


INSTANCES_OK = binary_response(
    'multipart/related; type="application/dicom": one DICOM file per part.',
    'multipart/related; type="application/dicom"',
)


@router.get(
    STUDY,
    **_options(
        "retrieveStudy", "WADO-RS: a study's instances", INSTANCES_DESCRIPTION, INSTANCES_OK
    ),
)
async def retrieve_study(
    study_instance_uid: str, request: Request, reader: ReaderDep, ranges: RangesDep
) -> Response:
    """Every instance of the study."""
    body = await retrieve.retrieve_instances(
        reader, ranges, study_uid=study_uid(study_instance_uid)
    )
    return respond(request, body)


@router.get(
    SERIES,
    **_options(
        "retrieveSeries", "WADO-RS: a series' instances", INSTANCES_DESCRIPTION, INSTANCES_OK
    ),
)
async def retrieve_series(
    study_instance_uid: str,
    series_instance_uid: str,
    request: Request,
    reader: ReaderDep,
    ranges: RangesDep,
) -> Response:
    """Every instance of the series."""
    body = await retrieve.retrieve_instances(
        reader,
        ranges,
        study_uid=study_uid(study_instance_uid),
        series_uid=series_uid(series_instance_uid),
    )
    return respond(request, body)


@router.get(
    INSTANCE,
    **_options(
        "retrieveInstance",
        "WADO-RS: one instance",
        INSTANCES_DESCRIPTION + "\nA single-part `application/dicom` is also served here.",
        binary_response(
            "The instance (multipart/related, or a single application/dicom part).",
            'multipart/related; type="application/dicom"',
            "application/dicom",
        ),
    ),
)
async def retrieve_instance(
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    request: Request,
    reader: ReaderDep,
    ranges: RangesDep,
) -> Response:
    """One instance."""
    body = await retrieve.retrieve_instances(
        reader,
        ranges,
        study_uid=study_uid(study_instance_uid),
        series_uid=series_uid(series_instance_uid),
        sop_uid=sop_uid(sop_instance_uid),
    )
    return respond(request, body)


METADATA_DESCRIPTION = """\
WADO-RS Retrieve Metadata (PS3.18 §10.4.1.1.2): a DICOM JSON array, one object per instance,
streamed series by series. Bulk data (Pixel Data, other binary or long values) is a
`BulkDataURI` to the `/bulk/` resource; (0002,0010) and (0008,3002) name the stored transfer
syntax. Converted instances are cached by stored file, so a repeated request costs one Orthanc
call per series.
"""
METADATA_OK = {
    "description": "One DICOM JSON object per instance.",
    "content": {
        DICOM_JSON: {
            "schema": {"type": "array", "items": DICOM_JSON_OBJECT},
            "example": [
                {
                    "00020010": {"vr": "UI", "Value": ["1.2.840.10008.1.2.4.201"]},
                    "00280010": {"vr": "US", "Value": [512]},
                    "7FE00010": {
                        "vr": "OB",
                        "BulkDataURI": "https://dicomgate.example.org/dicomweb/studies/1.2.3/"
                        "series/1.2.3.4/instances/1.2.3.4.5/bulk/7FE00010",
                    },
                }
            ],
        }
    },
}


async def _metadata(
    request: Request,
    reader: ReaderDep,
    ranges: RangesDep,
    study: str,
    series: str | None = None,
    sop: str | None = None,
) -> Response:
    if not accepts_any(ranges, (DICOM_JSON, "application/json")):
        raise NotAcceptable(
            "Metadata is served as application/dicom+json only (not XML), which the request "
            "does not accept"
        )
    chunks = await metadata.retrieve_metadata(
        reader,
        study_uid=study_uid(study),
        series_uid=None if series is None else series_uid(series),
        sop_uid=None if sop is None else sop_uid(sop),
    )
    return StreamingResponse(chunks, media_type=DICOM_JSON, headers={"Vary": "Accept"})


@router.get(
    STUDY + "/metadata",
    **_options(
        "retrieveStudyMetadata", "WADO-RS: a study's metadata", METADATA_DESCRIPTION, METADATA_OK
    ),
)
async def retrieve_study_metadata(
    study_instance_uid: str, request: Request, reader: ReaderDep, ranges: RangesDep
) -> Response:
    """The metadata of every instance of the study."""
    return await _metadata(request, reader, ranges, study_instance_uid)


@router.get(
    SERIES + "/metadata",
    **_options(
        "retrieveSeriesMetadata", "WADO-RS: a series' metadata", METADATA_DESCRIPTION, METADATA_OK
    ),
)
async def retrieve_series_metadata(
    study_instance_uid: str,
    series_instance_uid: str,
    request: Request,
    reader: ReaderDep,
    ranges: RangesDep,
) -> Response:
    """The metadata of every instance of the series."""
    return await _metadata(request, reader, ranges, study_instance_uid, series_instance_uid)


@router.get(
    INSTANCE + "/metadata",
    **_options(
        "retrieveInstanceMetadata",
        "WADO-RS: an instance's metadata",
        METADATA_DESCRIPTION,
        METADATA_OK,
    ),
)
async def retrieve_instance_metadata(
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    request: Request,
    reader: ReaderDep,
    ranges: RangesDep,
) -> Response:
    """The metadata of one instance (an array of one)."""
    return await _metadata(
        request, reader, ranges, study_instance_uid, series_instance_uid, sop_instance_uid
    )


FRAMES_OK = binary_response(
    "The frames: multipart/related (one part per frame) or one single-part frame.",
    "multipart/related; type=application/octet-stream",
    'multipart/related; type="image/jphc"',
    "image/jphc",
    "image/jhc",
    "application/octet-stream",
    "image/jp2",
)


@router.get(
    INSTANCE + "/frames/{frame_list}",
    **_options(
        "retrieveFrames",
        "WADO-RS: frames of an instance",
        FRAMES_DESCRIPTION,
        FRAMES_OK,
        ranged=True,
    ),
)
async def retrieve_frames(
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    frame_list: str,
    request: Request,
) -> Response:
    """Frames by number (1-based)."""
    # The reader and the accepted ranges without dependency injection: a viewer sends one
    # request per frame, and resolving the two (and the runtime) cost more than building them.
    body = await retrieve.retrieve_frames(
        reader_of(request, request.app.state.runtime),
        ranges_of(request),
        study_uid=study_uid(study_instance_uid),
        series_uid=series_uid(series_instance_uid),
        sop_uid=sop_uid(sop_instance_uid),
        numbers=retrieve.parse_frame_list(frame_list),
    )
    return respond(request, body, ranged=True)


BULK_DESCRIPTION = """\
WADO-RS Retrieve Bulk Data (PS3.18 §10.4.1.1.5): the value a metadata `BulkDataURI` points
at (`{tag}` or `{sequence tag}/{item}/{tag}`), as `application/octet-stream` (single part,
with Range) or `multipart/related; type=application/octet-stream` (the default). Pixel Data
(`7FE00010`) is served as the instance's frames, negotiated like the frames resource.
"""


@router.get(
    INSTANCE + "/bulk/{bulk_path:path}",
    **_options(
        "retrieveBulkData",
        "WADO-RS: a bulk data value",
        BULK_DESCRIPTION,
        binary_response(
            "The value (or, for Pixel Data, the frames).",
            "multipart/related; type=application/octet-stream",
            "application/octet-stream",
        ),
        ranged=True,
    ),
)
async def retrieve_bulk_data(
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    bulk_path: str,
    request: Request,
    reader: ReaderDep,
    ranges: RangesDep,
) -> Response:
    """One bulk data value of an instance."""
    body = await retrieve.retrieve_bulk(
        reader,
        ranges,
        study_uid=study_uid(study_instance_uid),
        series_uid=series_uid(series_instance_uid),
        sop_uid=sop_uid(sop_instance_uid),
        path=retrieve.parse_bulk_path(bulk_path),
    )
    return respond(request, body, ranged=True)
