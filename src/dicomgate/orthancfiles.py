"""Whole stored files from Orthanc over lean kept-alive HTTP/1.1 connections (the hot read).

A viewer's frame request is one GET of a stored file (``/attachments/dicom/data``, a few hundred
KiB). Through httpx (httpcore, anyio, h11) that one call cost about 1.4 ms of CPU on the event
loop: more than half of the whole request, and what bounded the frames per second. Here the
same GET runs on plain asyncio streams: one request head written, one response head read up to
its blank line, the body read by its Content-Length (about 0.2 ms).

Only the ordinary answer is handled here: ``200`` with a Content-Length, not chunked, not
compressed, over ``http://``. Anything else — an error status, another framing, a connection
that fails twice — answers None and the caller sends the request again through the shared
httpx client, whose answer is mapped to domain errors as for every other Orthanc call
(``orthanc.py``); so are timeouts (``FetchTimeout``), never waited for twice. The same
settings apply: Orthanc's URL and credentials, the request id, the read and connect timeouts,
a bounded pool whose idle connections expire before Orthanc closes them.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from dicomgate.requestid import HEADER as REQUEST_ID_HEADER
from dicomgate.requestid import REQUEST_ID

MAX_HEAD = 64 * 1024  # Orthanc's answer heads are a few hundred bytes
BUFFER = 1024 * 1024  # the stream's buffer: a file is read in few wake-ups


class FetchTimeout(Exception):
    """Orthanc did not answer (or accept the connection) in time."""


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class FileFetcher:
    """GETs answered ``200`` with a body of known length, on a small keep-alive pool."""

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
        self._address = (parts.hostname, parts.port or 80)
        self._prefix = parts.path.rstrip("/")
        host = parts.netloc.rpartition("@")[2]
        if auth is None and parts.username is not None:  # as httpx: credentials in the URL
            auth = (unquote(parts.username), unquote(parts.password or ""))
        head = f"Host: {host}\r\nUser-Agent: dicomgate\r\nAccept-Encoding: identity\r\n"
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            head += f"Authorization: Basic {pair}\r\n"
        self._head = head
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._keepalive_expiry = keepalive_expiry
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[tuple[Connection, float]] = []

    @classmethod
    def for_url(
        cls,
        base_url: str,
        *,
        auth: tuple[str, str] | None,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        keepalive_expiry: float,
    ) -> FileFetcher | None:
        """A fetcher, or None when the URL is not plain http:// (httpx then does it all)."""
        try:
            return cls(
                base_url,
                auth=auth,
                timeout=timeout,
                connect_timeout=connect_timeout,
                max_connections=max_connections,
                keepalive_expiry=keepalive_expiry,
            )
        except ValueError:
            return None

    async def get(self, path: str) -> tuple[Mapping[str, str], bytes] | None:
        """``GET path``: the answer's headers (lower-case names) and body, or None when the
        answer is not a plain 200 (the caller then asks through httpx). A stale kept-alive
        connection is replaced once. Raises ``FetchTimeout``."""
        request = self._request(path)
        async with self._slots:
            for _ in range(2):
                connection, reused = await self._connection()
                try:
                    async with asyncio.timeout(self._timeout):
                        answer = await self._exchange(connection, request)
                except TimeoutError:
                    _close(connection)
                    raise FetchTimeout from None
                except (OSError, EOFError, ValueError, asyncio.LimitOverrunError):
                    # IncompleteReadError is an EOFError: Orthanc closed the kept connection.
                    _close(connection)
                    if reused:
                        continue
                    return None
                except BaseException:  # cancelled: the answer may be half read
                    _close(connection)
                    raise
                if answer is None:
                    _close(connection)
                return answer
        return None

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            _close(connection)

    def _request(self, path: str) -> bytes:
        head = f"GET {self._prefix}{path} HTTP/1.1\r\n{self._head}"
        request_id = REQUEST_ID.get()
        if request_id != "-":
            head += f"{REQUEST_ID_HEADER}: {request_id}\r\n"
        return (head + "\r\n").encode("latin-1")

    async def _connection(self) -> tuple[Connection, bool]:
        now = time.monotonic()
        while self._idle:
            connection, since = self._idle.pop()
            if now - since < self._keepalive_expiry and not connection[0].at_eof():
                return connection, True
            _close(connection)
        try:
            async with asyncio.timeout(self._connect_timeout):
                connection = await asyncio.open_connection(*self._address, limit=BUFFER)
        except TimeoutError:
            raise FetchTimeout from None
        return connection, False

    async def _exchange(
        self, connection: Connection, request: bytes
    ) -> tuple[Mapping[str, str], bytes] | None:
        reader, writer = connection
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            return None
        lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if rest[:3] != "200" or version not in ("HTTP/1.1", "HTTP/1.0"):
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                return None
            headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length", "")
        if (
            not length.isdigit()
            or "transfer-encoding" in headers
            or headers.get("content-encoding", "identity").lower() != "identity"
        ):
            return None
        body = await reader.readexactly(int(length))
        if version == "HTTP/1.1" and headers.get("connection", "").lower() != "close":
            self._idle.append((connection, time.monotonic()))
        else:
            _close(connection)
        return headers, body


def _close(connection: Connection) -> None:
    connection[1].close()
