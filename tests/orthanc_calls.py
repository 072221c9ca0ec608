"""Every request dicomgate sends to Orthanc from now on, whichever client sends it: the shared
httpx client, and the aiohttp fetcher of whole stored files (``orthancfiles``)."""

from __future__ import annotations

from typing import Any

import httpx

from dicomgate.runtime import Runtime


def record_orthanc_calls(runtime: Runtime) -> list[str]:
    """A list that fills with ``"METHOD /path"`` of each request, in the order they are sent."""
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    runtime.http.event_hooks["request"].append(record)
    files = runtime.files
    if files is not None:
        fetch = files.get

        async def fetch_recorded(path: str) -> Any:
            seen.append(f"GET {path}")
            return await fetch(path)

        files.get = fetch_recorded  # type: ignore[method-assign]
    return seen
