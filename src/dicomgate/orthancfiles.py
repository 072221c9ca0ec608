"""Whole stored files from Orthanc through aiohttp's client (the hot read).

A viewer's frame request is one GET of a stored file (``/attachments/dicom/data``, a few hundred
KiB). Through httpx (httpcore, anyio, h11, all pure Python) that one call cost about 1.4 ms of
CPU on the event loop: more than half of the whole request, and what bounded the frames per
second. aiohttp's client (its HTTP parser in C) does the same GET for about a tenth of that.

Only the ordinary answer is taken here: ``200``, not compressed, over ``http://``. Anything
else (an error status, a compressed body, a connection that fails twice) answers None, and the
caller sends the request again through the shared httpx client, whose answer is mapped to domain
errors as for every other Orthanc call (``orthanc_errors.py``); so are timeouts (``FetchTimeout``),
never waited for twice. The same settings apply: Orthanc's URL and credentials, the request id,
the read and connect timeouts, a bounded pool whose idle connections expire before Orthanc
closes them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp

from dicomgate.requestid import HEADER as REQUEST_ID_HEADER
from dicomgate.requestid import REQUEST_ID


class FetchTimeout(Exception):
    """Orthanc did not answer (or accept the connection) in time."""


# A kept-alive connection Orthanc closed just as it was reused: asked again once (a GET).
_STALE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class FileFetcher:
    """GETs answered ``200`` with an uncompressed body, on a bounded keep-alive pool."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | None,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        keepalive_expiry: float,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"Only http:// URLs are fetched directly, not {parts.scheme!r}")
        host = parts.netloc.rpartition("@")[2]
        if auth is None and parts.username is not None:  # as httpx: credentials in the URL
            auth = (unquote(parts.username), unquote(parts.password or ""))
        self._base = urlunsplit(("http", host, parts.path.rstrip("/"), "", ""))
        self._headers = {"Accept-Encoding": "identity", "User-Agent": "dicomgate"}
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {pair}"
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_url(cls, base_url: str, **options: Any) -> FileFetcher | None:
        """A fetcher (``options``: as the constructor's), or None when the URL is not plain
        http:// (httpx then does it all)."""
        try:
            return cls(base_url, **options)
        except ValueError:
            return None

    def _client(self) -> aiohttp.ClientSession:
        """The session, opened on first use (inside the event loop that uses it)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    keepalive_timeout=self._keepalive_expiry,
                    use_dns_cache=False,
                ),
                timeout=self._timeout,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
            )
        return self._session

    async def get(self, path: str) -> tuple[Mapping[str, str], bytes] | None:
        """``GET path``: the answer's headers (lower-case names) and body, or None when the
        answer is not a plain 200 (the caller then asks through httpx). A stale kept-alive
        connection is replaced once. Raises ``FetchTimeout``."""
        headers = dict(self._headers)
        request_id = REQUEST_ID.get()
        if request_id != "-":
            headers[REQUEST_ID_HEADER] = request_id
        for attempt in range(2):
            try:
                return await self._get(self._base + path, headers)
            except TimeoutError:  # aiohttp's timeouts (connect, read) are TimeoutErrors too
                raise FetchTimeout from None
            except _STALE:
                if attempt == 0:
                    continue
                return None
            except aiohttp.ClientError:
                return None
        return None

    async def _get(
        self, url: str, headers: dict[str, str]
    ) -> tuple[Mapping[str, str], bytes] | None:
        async with self._client().get(url, headers=headers, allow_redirects=False) as answer:
            encoding = answer.headers.get("Content-Encoding", "identity").lower()
            if answer.status != 200 or encoding != "identity":
                answer.close()  # not read: the connection is not kept
                return None
            body = await answer.read()
            return {name.lower(): value for name, value in answer.headers.items()}, body

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
