"""QIDO-RS routes (PS3.18 §10.6): thin — parse the query, run the search, answer DICOM JSON."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from dicomgate.dicomweb import qido
from dicomgate.dicomweb.http import ACCEPT_PARAMETER, RangesDep, ReaderDep, series_uid
from dicomgate.dicomweb.http import study_uid as check_study
from dicomgate.dicomweb.media import DICOM_JSON, accepts_any
from dicomgate.dicomweb.query import MAX_RESULTS, Level, parse_search
from dicomgate.dicomweb.schemas import DICOM_JSON_OBJECT
from dicomgate.errors import ORTHANC_ERRORS, BadRequest, NotAcceptable, error_responses

router = APIRouter(tags=["dicomweb"])

_EXAMPLE_STUDY = {
    "00080020": {"vr": "DA", "Value": ["20240101"]},
    "00080061": {"vr": "CS", "Value": ["CT"]},
    "00081190": {"vr": "UR", "Value": ["https://dicomgate.example.org/dicomweb/studies/1.2.3"]},
    "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
    "00100020": {"vr": "LO", "Value": ["P001"]},
    "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
    "00201206": {"vr": "IS", "Value": [1]},
    "00201208": {"vr": "IS", "Value": [300]},
}


def _parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


QUERY_PARAMETERS = [
    _parameter(
        "{attributeID}",
        "Any matching key by keyword or tag (`PatientID=P001`, `00100020=P001`): single value, "
        "`*`/`?` wildcards, UID lists (comma-separated), date/time ranges (`20240101-20241231`).",
    ),
    _parameter("includefield", "Extra attributes (keywords or tags, comma-separated) or `all`."),
    _parameter("fuzzymatching", "`true`: person names match as case-insensitive prefixes."),
    _parameter("limit", f"At most this many results (1–{MAX_RESULTS})."),
    _parameter("offset", "Skip this many results."),
    ACCEPT_PARAMETER,
]

SEARCH_DESCRIPTION = """\
QIDO-RS (PS3.18 §10.6), answered from Orthanc's `/tools/find` with a fixed number of Orthanc
calls whatever the number of results. The answer is a DICOM JSON array (`[]` when nothing
matches) with the attributes of PS3.18 Table 10.6.3-3/4/5 (computed ones included:
ModalitiesInStudy, NumberOfStudyRelatedSeries/Instances, NumberOfSeriesRelatedInstances),
the matching keys and the `includefield` ones. At most 1000 results per request; when more
matched, a `Warning: 299` header says so (page with `offset`). 400 for an unknown attribute,
a matching key of a lower level, a malformed UID, date, limit or offset; 406 when the Accept
header rules out application/dicom+json (XML is not served).
"""

SEARCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The matching resources, one DICOM JSON object each.",
        "content": {
            DICOM_JSON: {
                "schema": {"type": "array", "items": DICOM_JSON_OBJECT},
                "example": [_EXAMPLE_STUDY],
            }
        },
    },
    **error_responses(BadRequest, NotAcceptable, *ORTHANC_ERRORS),
}


async def _search(
    request: Request,
    reader: ReaderDep,
    ranges: RangesDep,
    level: Level,
    *,
    study: str | None = None,
    series: str | None = None,
) -> Response:
    if not accepts_any(ranges, (DICOM_JSON, "application/json")):
        raise NotAcceptable(
            "QIDO-RS answers are application/dicom+json (application/dicom+xml is not served), "
            "which the request does not accept"
        )
    parsed = parse_search(
        list(request.query_params.multi_items()), level=level, study_uid=study, series_uid=series
    )
    answer = await qido.search(reader, parsed)
    headers = {"Vary": "Accept"}
    if answer.more:
        headers["Warning"] = (
            '299 dicomgate "There are additional results that can be requested (offset)"'
        )
    body = json.dumps(answer.results, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, media_type=DICOM_JSON, headers=headers)


def _options(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "operation_id": operation_id,
        "description": SEARCH_DESCRIPTION,
        "response_class": Response,
        "responses": SEARCH_RESPONSES,
        "openapi_extra": {"parameters": QUERY_PARAMETERS},
    }


@router.get("/dicomweb/studies", **_options("searchStudies", "QIDO-RS: search for studies"))
async def search_studies(request: Request, reader: ReaderDep, ranges: RangesDep) -> Response:
    """Studies matching the query."""
    return await _search(request, reader, ranges, "Study")


@router.get("/dicomweb/series", **_options("searchSeries", "QIDO-RS: search for series"))
async def search_series(request: Request, reader: ReaderDep, ranges: RangesDep) -> Response:
    """Series of any study matching the query (with their study's attributes)."""
    return await _search(request, reader, ranges, "Series")


@router.get(
    "/dicomweb/studies/{study_instance_uid}/series",
    **_options("searchStudySeries", "QIDO-RS: search for the series of a study"),
)
async def search_study_series(
    study_instance_uid: str, request: Request, reader: ReaderDep, ranges: RangesDep
) -> Response:
    """Series of one study matching the query."""
    return await _search(request, reader, ranges, "Series", study=check_study(study_instance_uid))


@router.get("/dicomweb/instances", **_options("searchInstances", "QIDO-RS: search for instances"))
async def search_instances(request: Request, reader: ReaderDep, ranges: RangesDep) -> Response:
    """Instances of any study matching the query (with their study's and series' attributes)."""
    return await _search(request, reader, ranges, "Instance")


@router.get(
    "/dicomweb/studies/{study_instance_uid}/instances",
    **_options("searchStudyInstances", "QIDO-RS: search for the instances of a study"),
)
async def search_study_instances(
    study_instance_uid: str, request: Request, reader: ReaderDep, ranges: RangesDep
) -> Response:
    """Instances of one study matching the query (with their series' attributes)."""
    return await _search(request, reader, ranges, "Instance", study=check_study(study_instance_uid))


@router.get(
    "/dicomweb/studies/{study_instance_uid}/series/{series_instance_uid}/instances",
    **_options("searchSeriesInstances", "QIDO-RS: search for the instances of a series"),
)
async def search_series_instances(
    study_instance_uid: str,
    series_instance_uid: str,
    request: Request,
    reader: ReaderDep,
    ranges: RangesDep,
) -> Response:
    """Instances of one series matching the query."""
    return await _search(
        request,
        reader,
        ranges,
        "Instance",
        study=check_study(study_instance_uid),
        series=series_uid(series_instance_uid),
    )
