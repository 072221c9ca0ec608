"""What the DICOMweb read routes share: their dependencies (the reader, the accepted media
ranges), the answer built from a service's ``Body`` (Range on single parts, the audit note),
and the OpenAPI descriptions of their media types."""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response, StreamingResponse

from dicomgate.audit.context import Touched, note_touched
from dicomgate.dependencies import RuntimeDep
from dicomgate.dicomweb.catalog import DetailsCache, SeriesIdentities, check_uid
from dicomgate.dicomweb.framesource import FrameSources
from dicomgate.dicomweb.lookup import InstanceLookup
from dicomgate.dicomweb.media import MediaRange, parse_accept
from dicomgate.dicomweb.ranges import parse_range
from dicomgate.dicomweb.reader import Reader, service_url
from dicomgate.dicomweb.retrieve import Body
from dicomgate.runtime import Runtime

BINARY = {"type": "string", "format": "binary"}


def _state(request: Request, name: str, factory: type[Any]) -> Any:
    found = getattr(request.app.state, name, None)
    if found is None:
        found = factory()
        setattr(request.app.state, name, found)
    return found


def reader_of(request: Request, runtime: Runtime) -> Reader:
    """The request's view of the process's client, pool and caches, and its service URL."""
    return Reader(
        orthanc=runtime.orthanc,
        pool=runtime.pool,
        settings=runtime.settings,
        cache=_state(request, "dicomweb_details", DetailsCache),
        series=_state(request, "dicomweb_series", SeriesIdentities),
        lookup=_state(request, "dicomweb_instances", InstanceLookup),
        sources=_state(request, "dicomweb_frame_sources", FrameSources),
        base_url=service_url(request, runtime.settings),
        touch=partial(note, request),
        sessions=runtime.sessions,
    )


def ranges_of(request: Request) -> list[MediaRange]:
    """The accepted media ranges: the ``accept`` query parameter (PS3.18 §8.3.3.1), which
    replaces the Accept header, else the header."""
    query = request.query_params.get("accept")
    if query is not None:
        return parse_accept(query, from_query=True)
    return parse_accept(request.headers.get("accept"))


async def get_reader(request: Request, runtime: RuntimeDep) -> Reader:
    return reader_of(request, runtime)


async def get_ranges(request: Request) -> list[MediaRange]:
    return ranges_of(request)


ReaderDep = Annotated[Reader, Depends(get_reader)]
RangesDep = Annotated[list[MediaRange], Depends(get_ranges)]


def study_uid(value: str) -> str:
    return check_uid(value, "Study Instance")


def series_uid(value: str) -> str:
    return check_uid(value, "Series Instance")


def sop_uid(value: str) -> str:
    return check_uid(value, "SOP Instance")


def note(request: Request, touched: Touched) -> None:
    """Name what the request touched on its audit row."""
    note_touched(request, **asdict(touched))


def respond(request: Request, body: Body, *, ranged: bool = False) -> Response:
    """The HTTP answer; a single part supports Range (206, 416) when ``ranged``."""
    headers = {"Vary": "Accept"}
    if body.data is None:
        assert body.chunks is not None
        return StreamingResponse(body.chunks, media_type=body.content_type, headers=headers)
    if ranged and body.single_part:
        headers["Accept-Ranges"] = "bytes"
        wanted = parse_range(request.headers.get("range"), len(body.data))
        if wanted is not None:
            headers["Content-Range"] = wanted.content_range
            return Response(
                wanted.slice(body.data),
                status_code=206,
                media_type=body.content_type,
                headers=headers,
            )
    return Response(body.data, media_type=body.content_type, headers=headers)


def binary_response(description: str, *media_types: str) -> dict[str, Any]:
    """An OpenAPI 200 whose body is one of ``media_types`` (binary)."""
    return {
        "description": description,
        "content": {m: {"schema": BINARY} for m in media_types},
    }


ACCEPT_PARAMETER = {
    "name": "accept",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": (
        "Media types accepted, as in an Accept header (PS3.18 §8.3.3.1); replaces the header. "
        "E.g. `image/jhc` for single-part HTJ2K frames."
    ),
}
