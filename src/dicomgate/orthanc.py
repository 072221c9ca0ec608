"""OrthancClient: typed async calls over the one shared httpx client.

Only the calls dicomgate needs are here (an allow-list, never a generic proxy). Transport errors,
timeouts and Orthanc's error answers are converted to domain errors at this boundary, so nothing
above it sees httpx. No business logic lives here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import quote

import httpx

from dicomgate.errors import (
    OrthancError,
)
from dicomgate.orthanc_errors import counted, map_exceptions, parsed, raise_for_status
from dicomgate.orthanc_models import (
    LEVEL_WORDS,
    ChangesPage,
    DeleteAnswer,
    InstanceHeader,
    Level,
    StoredInstance,
    file_uuid_of,
    not_found_message,
)
from dicomgate.orthancfiles import FetchTimeout, FileFetcher

log = logging.getLogger(__name__)

# Orthanc gzips answers when asked (httpx asks by default): near Orthanc it only costs CPU.
IDENTITY = {"Accept-Encoding": "identity"}
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})  # sent again if the connection drops first
FindLevel = Literal["Patient", "Study", "Series", "Instance"]
TagLevel = Literal["series", "instances"]
Part = Literal["", "attachments/dicom/info"]  # the attachment's Uuid and UncompressedMD5


class OrthancClient:
    """Typed async methods for the Orthanc REST calls dicomgate uses."""

    def __init__(self, http: httpx.AsyncClient, files: FileFetcher | None = None) -> None:
        self._http = http
        self._files = files  # the aiohttp path for stored files (``orthancfiles``), if any

    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        not_found: str | None = None,
        storing: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        with map_exceptions(what):
            response = await self._send(method, path, **kwargs)
        raise_for_status(response, what, not_found, storing=storing)
        return response

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; if the connection drops before an answer (a kept-alive one Orthanc
        closed as it was reused, say), an idempotent one is sent once more on a fresh
        connection (RFC 9110 §9.2.2). A second failure, or any for a write, is raised."""
        try:
            return await self._http.request(method, path, **kwargs)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            if method not in IDEMPOTENT_METHODS:
                raise
            return await self._http.request(method, path, **kwargs)

    async def _json(
        self, method: str, path: str, *, what: str, not_found: str | None = None, **kwargs: Any
    ) -> Any:
        response = await self._request(method, path, what=what, not_found=not_found, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise counted(OrthancError(f"Orthanc sent a non-JSON answer to {what}")) from None

    async def system(self) -> dict[str, Any]:
        """``GET /system``: name, version, API version, plugins."""
        result: dict[str, Any] = await self._json("GET", "/system", what="GET /system")
        return result

    async def statistics(self) -> dict[str, Any]:
        """``GET /statistics``: counts and disk usage."""
        result: dict[str, Any] = await self._json("GET", "/statistics", what="GET /statistics")
        return result

    async def changes(self, *, since: int | None, limit: int = 1) -> ChangesPage:
        """``GET /changes?since=&limit=``; ``since`` None: ``?last`` (Orthanc's latest change)."""
        params = {"last": ""} if since is None else {"since": since, "limit": limit}
        result = await self._json("GET", "/changes", params=params, what="GET /changes")
        return parsed(ChangesPage.from_json, result)

    async def resource(self, level: Level, orthanc_id: str, part: Part = "") -> dict[str, Any]:
        """``GET /{level}/{id}``: one resource with its main tags and children (or ``part``)."""
        tail = f"/{part}" if part else ""
        result: dict[str, Any] = await self._json(
            "GET",
            f"/{level}/{orthanc_id}{tail}",
            what=f"GET /{level}/{{id}}{tail}",
            not_found=not_found_message(level, orthanc_id),
        )
        return result

    async def list_expanded(self, level: Level) -> list[dict[str, Any]]:
        """``GET /{level}?expand``: every resource of a level, with main tags, in one call."""
        result: list[dict[str, Any]] = await self._json(
            "GET", f"/{level}", params={"expand": ""}, what=f"GET /{level}?expand"
        )
        return result

    async def children(self, level: Level, orthanc_id: str, child: Level) -> list[dict[str, Any]]:
        """``GET /{level}/{id}/{child}``: the expanded children of one resource, in one call."""
        result: list[dict[str, Any]] = await self._json(
            "GET",
            f"/{level}/{orthanc_id}/{child}",
            what=f"GET /{level}/{{id}}/{child}",
            not_found=not_found_message(level, orthanc_id),
        )
        return result

    async def parent(self, level: Level, orthanc_id: str, parent: Level) -> dict[str, Any]:
        """``GET /{level}/{id}/{parent}`` (singular, e.g. ``/series/{id}/study``): one ancestor."""
        result: dict[str, Any] = await self._json(
            "GET",
            f"/{level}/{orthanc_id}/{LEVEL_WORDS[parent]}",
            what=f"GET /{level}/{{id}}/{LEVEL_WORDS[parent]}",
            not_found=not_found_message(level, orthanc_id),
        )
        return result

    async def series_instances_tags(
        self, series_id: str, *, short: bool = False
    ) -> dict[str, dict[str, Any]]:
        """``GET /series/{id}/instances-tags?simplify``: every instance's tags, in one call.

        ``short``: keyed by hex tag (``"0028,0100"``) instead of keyword; Pixel Data then shows
        as ``"7fe0,0010": null`` when present (its value is never sent).
        """
        result: dict[str, dict[str, Any]] = await self._json(
            "GET",
            f"/series/{series_id}/instances-tags",
            params={"short" if short else "simplify": ""},
            what="GET /series/{id}/instances-tags",
            not_found=not_found_message("series", series_id),
        )
        return result

    async def find(
        self,
        level: FindLevel,
        query: dict[str, str],
        *,
        expand: bool = True,
        limit: int | None = None,
        since: int | None = None,
        case_sensitive: bool | None = None,
    ) -> list[Any]:
        """``POST /tools/find`` (``case_sensitive`` applies to every key of the query)."""
        body: dict[str, Any] = {"Level": level, "Query": query, "Expand": expand}
        options = {"Limit": limit, "Since": since, "CaseSensitive": case_sensitive}
        body.update({k: v for k, v in options.items() if v is not None})
        result: list[Any] = await self._json(
            "POST", "/tools/find", json=body, what="POST /tools/find", headers=IDENTITY
        )
        return result

    async def bulk_content(
        self, level: FindLevel, orthanc_ids: list[str], *, metadata: bool = False
    ) -> list[dict[str, Any]]:
        """``POST /tools/bulk-content``: many resources' content (and metadata) in one call."""
        body = {"Resources": orthanc_ids, "Level": level, "Metadata": metadata}
        what = "POST /tools/bulk-content"
        result: list[dict[str, Any]] = (
            await self._json("POST", what[5:], json=body, what=what, headers=IDENTITY)
            if orthanc_ids
            else []
        )
        return result

    async def tags_json(
        self, level: TagLevel, orthanc_id: str, *, ignore_length: Sequence[str] = ()
    ) -> bytes:
        """``/series/{id}/instances-tags`` or ``/instances/{id}/tags`` (full format), raw JSON;
        ``ignore_length``: tags (``0018-1020``) sent whole instead of as ``TooLong``."""
        path = f"/{level}/{orthanc_id}/" + ("instances-tags" if level == "series" else "tags")
        response = await self._request(
            "GET",
            path,
            params=[("ignore-length", t) for t in ignore_length],
            what=f"GET /{level}/{{id}}/{path.rsplit('/', 1)[1]}",
            not_found=not_found_message(level, orthanc_id),
            headers=IDENTITY,
        )
        return response.content

    async def frame_raw(self, orthanc_id: str, index: int) -> bytes | None:
        """A stored frame's bytes as stored (HTJ2K included); ``None`` when Orthanc 1.10 cannot
        cut it out (it answers 400: several fragments per frame without offset table)."""
        what = "GET /instances/{id}/frames/{n}/raw"
        with map_exceptions(what):
            path = f"/instances/{orthanc_id}/frames/{index}/raw"
            response = await self._send("GET", path, headers=IDENTITY)
        if response.status_code == 400:
            return None
        raise_for_status(response, what, not_found_message("instances", orthanc_id))
        return response.content

    async def delete(self, level: Level, orthanc_id: str) -> DeleteAnswer:
        """``DELETE /{level}/{id}``; Orthanc answers with the remaining ancestor, if any."""
        response = await self._request(
            "DELETE",
            f"/{level}/{orthanc_id}",
            what=f"DELETE /{level}/{{id}}",
            not_found=not_found_message(level, orthanc_id),
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        return parsed(DeleteAnswer.from_json, body)

    async def metadata(self, level: Level, orthanc_id: str) -> dict[str, str]:
        """``GET /{level}/{id}/metadata?expand``: all metadata names and values of a resource."""
        result: dict[str, str] = await self._json(
            "GET",
            f"/{level}/{orthanc_id}/metadata",
            params={"expand": ""},
            what=f"GET /{level}/{{id}}/metadata",
            not_found=not_found_message(level, orthanc_id),
        )
        return result

    async def set_metadata(self, level: Level, orthanc_id: str, name: str, value: str) -> None:
        """``PUT /{level}/{id}/metadata/{name}``: Orthanc allows it for user metadata only."""
        await self._request(
            "PUT",
            f"/{level}/{orthanc_id}/metadata/{quote(name, safe='')}",
            content=value.encode(),
            what=f"PUT /{level}/{{id}}/metadata/{{name}}",
            not_found=f"{not_found_message(level, orthanc_id)} (or no metadata named {name!r})",
        )

    async def labels(self, level: Level, orthanc_id: str) -> list[str]:
        """``GET /{level}/{id}/labels`` (Orthanc ≥ 1.12 with ``HasLabels`` in ``/system``)."""
        result: list[str] = await self._json(
            "GET",
            f"/{level}/{orthanc_id}/labels",
            what=f"GET /{level}/{{id}}/labels",
            not_found=not_found_message(level, orthanc_id),
        )
        return result

    async def add_label(self, level: Level, orthanc_id: str, label: str) -> None:
        """``PUT /{level}/{id}/labels/{label}`` (Orthanc ≥ 1.12)."""
        await self._request(
            "PUT",
            f"/{level}/{orthanc_id}/labels/{quote(label, safe='')}",
            content=b"",
            what=f"PUT /{level}/{{id}}/labels/{{label}}",
            not_found=not_found_message(level, orthanc_id),
        )

    async def patient_protected(self, orthanc_id: str) -> bool:
        """``GET /patients/{id}/protected``: True when Orthanc never recycles the patient."""
        response = await self._request(
            "GET",
            f"/patients/{orthanc_id}/protected",
            what="GET /patients/{id}/protected",
            not_found=not_found_message("patients", orthanc_id),
        )
        return response.text.strip() == "1"

    async def set_patient_protected(self, orthanc_id: str, protected: bool) -> None:
        """``PUT /patients/{id}/protected`` (``1``/``0``): exempt a patient from recycling."""
        await self._request(
            "PUT",
            f"/patients/{orthanc_id}/protected",
            content=b"1" if protected else b"0",
            what="PUT /patients/{id}/protected",
            not_found=not_found_message("patients", orthanc_id),
        )

    async def instance_tags(self, orthanc_id: str, *, simplify: bool = True) -> dict[str, Any]:
        """``GET /instances/{id}/simplified-tags`` (or ``/tags``)."""
        suffix = "simplified-tags" if simplify else "tags"
        result: dict[str, Any] = await self._json(
            "GET",
            f"/instances/{orthanc_id}/{suffix}",
            what=f"GET /instances/{{id}}/{suffix}",
            not_found=not_found_message("instances", orthanc_id),
        )
        return result

    async def instance_header(self, orthanc_id: str) -> InstanceHeader:
        """``GET /instances/{id}/header?simplify``: the stored file's meta (Transfer Syntax …)."""
        result = await self._json(
            "GET",
            f"/instances/{orthanc_id}/header",
            params={"simplify": ""},
            what="GET /instances/{id}/header",
            not_found=not_found_message("instances", orthanc_id),
        )
        return InstanceHeader.from_json(result)

    async def instance_file(self, orthanc_id: str) -> bytes:
        """``GET /instances/{id}/file``: the stored DICOM file, whole (for codec work)."""
        _, data = await self._whole_file(orthanc_id, "file")
        return data

    async def attachment_file(self, orthanc_id: str) -> tuple[str | None, bytes]:
        """The stored file and its attachment UUID, from one answer (``file_uuid_of``)."""
        headers, data = await self._whole_file(orthanc_id, "attachments/dicom/data")
        return file_uuid_of(headers), data

    async def _whole_file(self, orthanc_id: str, resource: str) -> tuple[Mapping[str, str], bytes]:
        """A stored file, whole, and the answer's headers. Viewers' frames and conversions read
        files all the time: the plain 200 goes through the aiohttp fetcher when there is one
        (``orthancfiles``); anything else through httpx, so errors are mapped as for every
        call, and a timeout is never waited for twice."""
        path = f"/instances/{quote(orthanc_id, safe='')}/{resource}"
        what = f"GET /instances/{{id}}/{resource}"
        if self._files is not None:
            try:
                fetched = await self._files.get(path)
            except FetchTimeout:
                with map_exceptions(what):
                    raise httpx.ReadTimeout("no answer in time") from None
            if fetched is not None:
                return fetched
        response = await self._request(
            "GET",
            path,
            what=what,
            not_found=not_found_message("instances", orthanc_id),
            headers=IDENTITY,
        )
        return response.headers, response.content

    @asynccontextmanager
    async def stream_instance_file(
        self, orthanc_id: str
    ) -> AsyncIterator[tuple[httpx.Headers, AsyncIterator[bytes]]]:
        """Open ``GET /instances/{id}/file`` as a stream; errors surface before the first byte."""
        what = "GET /instances/{id}/file"
        with map_exceptions(what):
            # identity: raw chunks + Content-Length are passed on (Orthanc gzips when asked).
            path = f"/instances/{orthanc_id}/file"
            request = self._http.build_request("GET", path, headers=IDENTITY)
            response = await self._http.send(request, stream=True)
        try:
            if not response.is_success:
                await response.aread()
                raise_for_status(response, what, not_found_message("instances", orthanc_id))

            async def chunks() -> AsyncIterator[bytes]:
                with map_exceptions(what):
                    async for chunk in response.aiter_raw(64 * 1024):
                        yield chunk

            yield response.headers, chunks()
        finally:
            await response.aclose()

    async def store_instance(self, data: bytes) -> StoredInstance:
        """``POST /instances``: store one DICOM file; Orthanc answers ID, parents, Status."""
        result = await self._json(
            "POST",
            "/instances",
            content=data,
            headers={"Content-Type": "application/dicom"},
            what="POST /instances",
            storing=True,
        )
        return parsed(StoredInstance.from_json, result)

    async def store_instance_stream(
        self, chunks: AsyncIterator[bytes], *, size: int
    ) -> StoredInstance:
        """``POST /instances`` from a stream of ``size`` bytes (never whole in memory)."""
        result = await self._json(
            "POST",
            "/instances",
            content=chunks,
            headers={"Content-Type": "application/dicom", "Content-Length": str(size)},
            what="POST /instances",
            storing=True,
        )
        return parsed(StoredInstance.from_json, result)
