"""WADO-RS rendered and thumbnail routes (PS3.18 §10.4.1.1.3, §10.4.1.1.6): thin."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from dicomgate.dicomweb import rendered
from dicomgate.dicomweb.http import (
    ACCEPT_PARAMETER,
    RangesDep,
    ReaderDep,
    binary_response,
    respond,
    series_uid,
    sop_uid,
    study_uid,
)
from dicomgate.dicomweb.retrieve import parse_frame_list
from dicomgate.dicomweb.retrieve_router import INSTANCE, READ_ERRORS, SERIES, STUDY
from dicomgate.errors import FrameNotFound, error_responses

router = APIRouter(tags=["dicomweb"])

RENDER_PARAMETERS = [
    ACCEPT_PARAMETER,
    {
        "name": "window",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "center,width[,linear|linear-exact|sigmoid] (greyscale; else the file's).",
    },
    {
        "name": "viewport",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "vw,vh[,sx,sy,sw,sh]: fit the (cropped) image in vw×vh, aspect kept.",
    },
    {
        "name": "quality",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
        "description": "JPEG quality (default 90).",
    },
]
RENDERED_DESCRIPTION = """\
Rendered by dicomgate in its worker pool (PS3.18 §8.3.5): Modality LUT, then the `window`
asked for or the file's VOI, MONOCHROME1 inverted, colour kept; `image/jpeg` (the default)
or `image/png`. A study or series renders one image per instance (its first frame) as
`multipart/related`; an instance renders its first frame; frames render one image each
(several: multipart). Thumbnails are small (longer side 128 pixels unless a viewport is
given): a study's or series' is the middle instance of its first series.
"""
IMAGES = binary_response(
    "One image, or one part per image.",
    "image/jpeg",
    "image/png",
    'multipart/related; type="image/jpeg"',
    'multipart/related; type="image/png"',
)


def _options(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "operation_id": operation_id,
        "description": RENDERED_DESCRIPTION,
        "response_class": Response,
        "responses": {200: IMAGES, **error_responses(*READ_ERRORS, FrameNotFound)},
        "openapi_extra": {"parameters": RENDER_PARAMETERS},
    }


async def _render(
    request: Request,
    reader: ReaderDep,
    ranges: RangesDep,
    *,
    thumbnail: bool,
    study: str,
    series: str | None = None,
    sop: str | None = None,
    frames: str | None = None,
) -> Response:
    options = rendered.parse_render_params(request.query_params, thumbnail=thumbnail)
    if series is None or sop is None:
        body = await rendered.render_instances(
            reader,
            ranges,
            options,
            study_uid=study_uid(study),
            series_uid=None if series is None else series_uid(series),
        )
    else:
        body = await rendered.render_frames(
            reader,
            ranges,
            options,
            study_uid=study_uid(study),
            series_uid=series_uid(series),
            sop_uid=sop_uid(sop),
            numbers=None if frames is None else parse_frame_list(frames),
        )
    return respond(request, body)


def _add_routes(kind: str) -> None:
    """The study, series, instance and frames variants of one kind (rendered, thumbnail)."""
    thumbnail = kind == "thumbnail"
    name = kind.title()

    async def study(
        study_instance_uid: str, request: Request, reader: ReaderDep, ranges: RangesDep
    ) -> Response:
        return await _render(request, reader, ranges, thumbnail=thumbnail, study=study_instance_uid)

    async def series(
        study_instance_uid: str,
        series_instance_uid: str,
        request: Request,
        reader: ReaderDep,
        ranges: RangesDep,
    ) -> Response:
        return await _render(
            request,
            reader,
            ranges,
            thumbnail=thumbnail,
            study=study_instance_uid,
            series=series_instance_uid,
        )

    async def instance(
        study_instance_uid: str,
        series_instance_uid: str,
        sop_instance_uid: str,
        request: Request,
        reader: ReaderDep,
        ranges: RangesDep,
    ) -> Response:
        return await _render(
            request,
            reader,
            ranges,
            thumbnail=thumbnail,
            study=study_instance_uid,
            series=series_instance_uid,
            sop=sop_instance_uid,
        )

    async def frames(
        study_instance_uid: str,
        series_instance_uid: str,
        sop_instance_uid: str,
        frame_list: str,
        request: Request,
        reader: ReaderDep,
        ranges: RangesDep,
    ) -> Response:
        return await _render(
            request,
            reader,
            ranges,
            thumbnail=thumbnail,
            study=study_instance_uid,
            series=series_instance_uid,
            sop=sop_instance_uid,
            frames=frame_list,
        )

    for level, path, endpoint in (
        ("study", STUDY, study),
        ("series", SERIES, series),
        ("instance", INSTANCE, instance),
        ("frames", FRAMES, frames),
    ):
        endpoint.__doc__ = f"The {kind} {level}."
        router.add_api_route(
            f"{path}/{kind}",
            endpoint,
            methods=["GET"],
            **_options(f"retrieve{level.title()}{name}", f"WADO-RS: {kind} {level}"),
        )


FRAMES = INSTANCE + "/frames/{frame_list}"
_add_routes("rendered")
_add_routes("thumbnail")
