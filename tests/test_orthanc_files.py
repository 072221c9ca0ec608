"""The aiohttp GET of stored files (``orthancfiles``): on a real Orthanc, the same file and
attachment UUID as through httpx, and every answer but a plain 200 handed back to httpx (so
errors are mapped as for every call); on a real TCP server that misbehaves on purpose, a
kept-alive connection closed under it is replaced, a silent server is a timeout (never
waited for twice), and a cancelled read leaves no connection behind."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from dicomgate.errors import NotFound, OrthancError, OrthancTimeout
from dicomgate.orthanc import OrthancClient
from dicomgate.orthancfiles import FetchTimeout, FileFetcher
from dicomgate.requestid import REQUEST_ID
from dicomgate.runtime import ORTHANC_KEEPALIVE_EXPIRY
from tests.builders import make_dataset, to_bytes
from tests.orthanc_process import OrthancProcess


def fetcher(url: str, *, auth: tuple[str, str] | None = None, timeout: float = 10) -> FileFetcher:
    made = FileFetcher.for_url(
        url,
        auth=auth,
        timeout=timeout,
        connect_timeout=5,
        max_connections=4,
        keepalive_expiry=ORTHANC_KEEPALIVE_EXPIRY,
    )
    assert made is not None
    return made


def test_only_plain_http_is_fetched_directly() -> None:
    options = {
        "auth": None,
        "timeout": 1.0,
        "connect_timeout": 1.0,
        "max_connections": 1,
        "keepalive_expiry": 0.5,
    }
    assert FileFetcher.for_url("https://orthanc.example.org", **options) is None  # type: ignore[arg-type]
    assert FileFetcher.for_url("http://orthanc:8042/orthanc", **options) is not None  # type: ignore[arg-type]


async def test_a_stored_file_is_the_one_httpx_reads(clean_orthanc: OrthancProcess) -> None:
    data = to_bytes(make_dataset(rows=16, columns=16))
    orthanc_id = clean_orthanc.store(data)["ID"]
    files = fetcher(clean_orthanc.url)
    through_httpx: list[httpx.Request] = []

    async def count(request: httpx.Request) -> None:
        through_httpx.append(request)

    async with httpx.AsyncClient(
        base_url=clean_orthanc.url, event_hooks={"request": [count]}
    ) as http:
        slow = OrthancClient(http)
        fast = OrthancClient(http, files)
        expected = await slow.attachment_file(orthanc_id)
        assert expected[0] is not None
        assert expected[1] == data
        for _ in range(3):
            assert await fast.attachment_file(orthanc_id) == expected
        assert len(through_httpx) == 1  # the slow client's own: the fast reads went by aiohttp
    await files.aclose()


async def test_an_unknown_instance_is_not_found_through_httpx(
    clean_orthanc: OrthancProcess,
) -> None:
    files = fetcher(clean_orthanc.url)
    path = "/instances/0000/attachments/dicom/data"
    assert await files.get(path) is None  # 404: handed back
    async with httpx.AsyncClient(base_url=clean_orthanc.url) as http:
        with pytest.raises(NotFound, match="0000"):
            await OrthancClient(http, files).attachment_file("0000")
    await files.aclose()


# --- A real server that misbehaves on purpose -------------------------------------------------
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, list[bytes]], object]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[str, list[bytes], list[int]]]:
    """A TCP server on loopback: its URL, the request heads it read, connections accepted."""
    heads: list[bytes] = []
    accepted: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await handler(reader, writer, heads)  # type: ignore[misc]
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield f"http://127.0.0.1:{port}", heads, accepted


def answer(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in extra)
    return (
        f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
        'Content-Disposition: filename="0f0f0f0f-1111-2222-3333-444444444444.dcm"\r\n'
        f"{head}\r\n"
    ).encode() + body


async def one_answer_then_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, heads: list[bytes]
) -> None:
    """Like Orthanc closing a kept-alive connection just as it is reused."""
    heads.append(await reader.readuntil(b"\r\n\r\n"))
    writer.write(answer(b"file"))
    await writer.drain()


async def test_a_kept_connection_closed_by_the_server_is_replaced() -> None:
    async with server(one_answer_then_close) as (url, _, accepted):
        files = fetcher(url)
        first = await files.get("/instances/a/attachments/dicom/data")
        assert first is not None
        await asyncio.sleep(0.05)  # the server has closed it: the next get reconnects
        second = await files.get("/instances/a/attachments/dicom/data")
        assert second is not None
        assert second[1] == b"file"
        assert second[0]["content-disposition"].startswith('filename="0f0f0f0f')
        assert len(accepted) == 2
        await files.aclose()


async def test_one_kept_alive_connection_serves_the_next_reads() -> None:
    async def keeps_answering(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, heads: list[bytes]
    ) -> None:
        while True:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(answer(b"file"))
            await writer.drain()

    async with server(keeps_answering) as (url, heads, accepted):
        files = fetcher(url)
        for _ in range(3):
            fetched = await files.get("/x")
            assert fetched is not None and fetched[1] == b"file"
        assert (len(heads), len(accepted)) == (3, 1)
        await files.aclose()


async def test_the_request_names_its_id_and_credentials() -> None:
    async with server(one_answer_then_close) as (url, heads, _):
        files = fetcher(url + "/orthanc/", auth=("dicomgate", "sécret"))
        token = REQUEST_ID.set("req-42")
        try:
            assert await files.get("/instances/a/attachments/dicom/data") is not None
        finally:
            REQUEST_ID.reset(token)
        await files.aclose()
    head = heads[0].decode("latin-1")
    assert head.startswith("GET /orthanc/instances/a/attachments/dicom/data HTTP/1.1\r\n")
    pair = base64.b64encode("dicomgate:sécret".encode()).decode()
    assert f"\r\nAuthorization: Basic {pair}\r\n" in head
    assert "\r\nX-Request-ID: req-42\r\n" in head
    assert "\r\nAccept-Encoding: identity\r\n" in head


async def test_credentials_in_the_url_are_sent_as_httpx_sends_them() -> None:
    async with server(one_answer_then_close) as (url, heads, _):
        files = fetcher(url.replace("http://", "http://dicomgate:s%C3%A9cret@"))
        assert await files.get("/x") is not None
        await files.aclose()
    pair = base64.b64encode("dicomgate:sécret".encode()).decode()
    head = heads[0].decode("latin-1")
    assert f"\r\nAuthorization: Basic {pair}\r\n" in head
    assert "\r\nHost: 127.0.0.1:" in head
    assert "@" not in head


def replying(reply: bytes) -> Handler:
    async def replies(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, heads: list[bytes]
    ) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(reply)
        await writer.drain()

    return replies


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nfile",
        b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["error", "not-found", "gzip-though-identity-asked", "redirect"],
)
async def test_anything_but_a_plain_200_is_handed_back(reply: bytes) -> None:
    async with server(replying(reply)) as (url, heads, _):
        files = fetcher(url)
        assert await files.get("/x") is None
        assert len(heads) == 1  # never followed elsewhere, never asked twice
        await files.aclose()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nfi\r\n2\r\nle\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nfile",  # no length: ends at the close
    ],
    ids=["chunked", "no-length"],
)
async def test_any_framing_of_a_200_is_read_whole(reply: bytes) -> None:
    async with server(replying(reply)) as (url, _, _):
        files = fetcher(url)
        fetched = await files.get("/x")
        assert fetched is not None and fetched[1] == b"file"
        await files.aclose()


async def test_an_error_answer_is_mapped_by_the_shared_client() -> None:
    async def error(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, heads: list[bytes]
    ) -> None:
        while True:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            body = b'{"Message": "Bad file format"}'
            writer.write(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    async with server(error) as (url, heads, _):
        files = fetcher(url)
        async with httpx.AsyncClient(base_url=url) as http:
            with pytest.raises(
                OrthancError,
                match=r"^Orthanc answered 500 to GET /instances/\{id\}/attachments/dicom/data: "
                "Bad file format$",
            ):
                await OrthancClient(http, files).attachment_file("a")
        assert len(heads) == 2  # once by the fetcher, once by httpx
        await files.aclose()


async def silent(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, heads: list[bytes]
) -> None:
    heads.append(await reader.readuntil(b"\r\n\r\n"))
    await asyncio.sleep(30)


async def test_a_silent_server_is_a_timeout_waited_for_once() -> None:
    async with server(silent) as (url, heads, _):
        files = fetcher(url, timeout=0.3)
        with pytest.raises(FetchTimeout):
            await files.get("/x")
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            with pytest.raises(
                OrthancTimeout,
                match=r"^Orthanc did not answer in time \(GET /instances/\{id\}/attachments/",
            ):
                await OrthancClient(http, files).attachment_file("a")
        assert len(heads) == 2  # one per call: httpx (30 s) never asked after the timeout
        await files.aclose()


async def test_a_cancelled_read_closes_its_connection() -> None:
    closed = asyncio.Event()

    async def waits_for_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, heads: list[bytes]
    ) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        assert await reader.read() == b""  # no answer sent: the client gives up and closes
        closed.set()

    async with server(waits_for_close) as (url, heads, _):
        files = fetcher(url)
        task = asyncio.ensure_future(files.get("/x"))
        await asyncio.sleep(0.3)
        assert len(heads) == 1  # sent, waiting for the answer
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(closed.wait(), 5)
        # Every slot is free again: as many reads at once as the pool allows still go out.
        async with server(one_answer_then_close) as (other, _, accepted):
            more = fetcher(other)
            answers = await asyncio.gather(*(more.get("/x") for _ in range(4)))
            assert all(a is not None for a in answers) and len(accepted) == 4
            await more.aclose()
        await files.aclose()
