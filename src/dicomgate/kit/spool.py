"""Stream a multipart upload to size-capped temp files, without buffering it in memory.

Starlette's ``request.form()`` spools files too, but has no per-file size limit: a 50 GiB part
would be written to disk whole before any check. Here each file part is counted while it
arrives and the request fails with 413 the moment one file passes ``max_file_bytes``. Files are
written under names dicomgate chooses (``0000.part`` …) in a private temp folder; the client's
file names are kept as labels only.

The same spooler reads ``multipart/related`` bodies (DICOMweb STOW-RS, PS3.18 §10.5): there
every part is a file, whatever its headers say; a part without a Content-Disposition gets the
field name ``file`` and a label dicomgate chooses (``part-0001`` …).
"""

from __future__ import annotations

import codecs
import shutil
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from dicomgate.errors import BadRequest, UploadTooLarge
from dicomgate.kit.disk import disk_full_is_507
from dicomgate.settings import Settings

CHUNK_FLUSH_BYTES = 1024 * 1024  # buffered per file before one write in a thread
# Text fields: the routes take a handful of short ones (patient_id, study_description, upload_id)
# and one series_path per file, a folder path (PATH_MAX is 4096 bytes).
MAX_FIELD_BYTES = 4096
MAX_NAMED_FIELDS = 16  # text fields allowed on top of one per file
MULTIPART_OVERHEAD = 1024 * 1024  # boundaries, preamble and epilogue on top of the parts
# python-multipart's per-part header caps (it refuses a part beyond them): 8 header lines of
# at most 4 KiB each.
MAX_PART_HEADERS = 8
MAX_PART_HEADER_BYTES = 4096 + 128
FORM_DATA = "multipart/form-data"
RELATED = "multipart/related"


@dataclass
class SpooledFile:
    """One uploaded file on disk; ``filename`` is the client's label, never a path."""

    field_name: str
    filename: str
    path: Path
    size: int = 0
    content_type: str = ""  # the part's Content-Type header as sent ("" when it had none)


@dataclass
class SpooledForm:
    """The parsed form: text fields in order, files on disk (deleted when the scope ends)."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[SpooledFile] = field(default_factory=list)

    def values(self, name: str) -> list[str]:
        """Every value of a repeated text field, in the order sent."""
        return [value for key, value in self.fields if key == name]

    def value(self, name: str) -> str | None:
        """The first value of a text field, or None."""
        values = self.values(name)
        return values[0] if values else None

    def files_of(self, *names: str) -> list[SpooledFile]:
        """The files sent under any of these field names, in the order sent."""
        return [f for f in self.files if f.field_name in names]


def _mib(n: int) -> str:
    return f"{n / 1024**2:.1f} MiB" if n >= 1024**2 else f"{n} bytes"


class _Spooler:
    """python-multipart callbacks that route file parts to capped temp files."""

    def __init__(
        self,
        folder: Path,
        *,
        max_file_bytes: int,
        max_files: int,
        max_request_bytes: int,
        charset: str,
        related: bool = False,
    ) -> None:
        self.folder = folder
        self.related = related
        self.max_file_bytes = max_file_bytes
        self.max_request_bytes = max_request_bytes
        self.total_bytes = 0  # every part's headers and content, files and text fields alike
        self.max_files = max_files
        self.max_fields = max_files + MAX_NAMED_FIELDS
        self.complete = False  # the closing boundary was seen (python-multipart's on_end)
        self.charset = charset
        self.form = SpooledForm()
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._content_type = b""
        self._field_name = ""
        self._text: bytearray | None = None
        self._file: SpooledFile | None = None
        self._handle: BinaryIO | None = None
        self._pending: list[tuple[BinaryIO, bytes]] = []
        self._buffer = bytearray()
        self.handles: list[BinaryIO] = []

    # --- python-multipart callbacks (synchronous; no disk I/O here) --------------------
    def on_part_begin(self) -> None:
        self._disposition = b""
        self._content_type = b""
        self._text = None
        self._file = None
        self._handle = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._header_value += data[start:end]

    def on_end(self) -> None:
        self.complete = True

    def _count(self, size: int) -> None:
        """Charge ``size`` bytes of the body against the per-request cap (RFC 9110 §15.5.14)."""
        self.total_bytes += size
        if self.total_bytes > self.max_request_bytes:
            raise UploadTooLarge(
                f"The upload is larger than the limit of {_mib(self.max_request_bytes)} per request"
            )

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        elif self._header_name.lower() == b"content-type":
            self._content_type = self._header_value
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options and not self.related:
            raise BadRequest('A multipart part has no Content-Disposition "name"')
        name = options.get(b"name", b"file")
        self._field_name = name.decode(self.charset, errors="replace")
        if b"filename" in options or self.related:
            if len(self.form.files) >= self.max_files:
                raise UploadTooLarge(
                    f"Too many files: this service accepts at most {self.max_files} per request"
                )
            index = len(self.form.files)
            label = options.get(b"filename")
            spooled = SpooledFile(
                field_name=self._field_name,
                filename=(
                    label.decode(self.charset, errors="replace")
                    if label is not None
                    else f"part-{index + 1:04d}"
                ),
                path=self.folder / f"{index:05d}.part",
                content_type=self._content_type.decode("latin-1").strip(),
            )
            # Opening a new empty file in our own private folder: negligible blocking.
            self._handle = spooled.path.open("wb")
            self.handles.append(self._handle)
            self._file = spooled
            self.form.files.append(spooled)
        else:
            if len(self.form.fields) >= self.max_fields:
                raise UploadTooLarge(
                    f"Too many form fields: at most {self.max_fields} per request (one "
                    f"series_path per file and {MAX_NAMED_FIELDS} others)"
                )
            self._text = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        self._count(size)
        if self._file is not None and self._handle is not None:
            self._file.size += size
            if self._file.size > self.max_file_bytes:
                raise UploadTooLarge(
                    f"File {self._file.filename!r} is larger than the limit of "
                    f"{_mib(self.max_file_bytes)}"
                )
            self._pending.append((self._handle, data[start:end]))
        elif self._text is not None:
            if len(self._text) + size > MAX_FIELD_BYTES:
                raise UploadTooLarge(
                    f"Form field {self._field_name[:64]!r} is longer than {MAX_FIELD_BYTES} bytes"
                )
            self._text += data[start:end]

    def on_part_end(self) -> None:
        if self._text is not None:
            value = self._text.decode(self.charset, errors="replace")
            self.form.fields.append((self._field_name, value))
        self._text = None

    # --- disk I/O, called from a worker thread -----------------------------------------
    def take_pending(self) -> list[tuple[BinaryIO, bytes]]:
        pending, self._pending = self._pending, []
        return pending


def _write_all(pending: list[tuple[BinaryIO, bytes]]) -> None:
    for handle, data in pending:
        handle.write(data)


def _finish(pending: list[tuple[BinaryIO, bytes]], handles: list[BinaryIO]) -> None:
    """The last buffered writes, then every file closed (closed even when a write fails):
    one thread call at the end of the body (a small upload's only one)."""
    try:
        _write_all(pending)
    finally:
        for handle in handles:
            handle.close()


@asynccontextmanager
async def spool_multipart(
    content_type: str | None,
    content_length: str | None,
    stream: AsyncIterable[bytes],
    *,
    max_file_bytes: int,
    max_files: int,
    max_request_bytes: int,
    spool_dir: Path | None = None,
    media_type: str = FORM_DATA,
) -> AsyncIterator[SpooledForm]:
    """Parse a ``multipart/form-data`` (or, when asked, ``multipart/related``) body into capped
    temp files; delete them on exit.

    Raises UploadTooLarge (413) as soon as a file passes ``max_file_bytes`` or the count passes
    ``max_files`` (and up front when Content-Length already says so), BadRequest (400) for a
    body that is not valid multipart.
    """
    kind, params = parse_options_header(content_type)
    if kind != media_type.encode("ascii"):
        raise BadRequest(f"The upload must be sent as {media_type}")
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart upload has no boundary")
    charset_name = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset_name).name
    except LookupError:
        charset = "utf-8"
    if content_length is not None and content_length.isdigit():
        ceiling = min(max_file_bytes * max_files, max_request_bytes) + MULTIPART_OVERHEAD
        if int(content_length) > ceiling:
            raise UploadTooLarge(
                f"The upload ({_mib(int(content_length))}) is larger than this service accepts"
            )

    with disk_full_is_507("spooling the upload"):
        folder = Path(
            await anyio.to_thread.run_sync(
                lambda: tempfile.mkdtemp(prefix="dicomgate-upload-", dir=spool_dir)
            )
        )
    spooler = _Spooler(
        folder,
        max_file_bytes=max_file_bytes,
        max_files=max_files,
        max_request_bytes=max_request_bytes,
        charset=charset,
        related=media_type == RELATED,
    )
    callbacks = {
        "on_part_begin": spooler.on_part_begin,
        "on_part_data": spooler.on_part_data,
        "on_part_end": spooler.on_part_end,
        "on_header_field": spooler.on_header_field,
        "on_header_value": spooler.on_header_value,
        "on_header_end": spooler.on_header_end,
        "on_headers_finished": spooler.on_headers_finished,
        "on_end": spooler.on_end,
    }
    received = False  # the whole body: its last buffered writes are worth making
    try:
        try:
            with disk_full_is_507("spooling the upload"):
                parser = MultipartParser(
                    boundary,
                    callbacks,  # type: ignore[arg-type]
                    max_header_count=MAX_PART_HEADERS,
                    max_header_size=MAX_PART_HEADER_BYTES,
                )
                await _receive(stream, parser, spooler, max_request_bytes=max_request_bytes)
                received = True
        except FormParserError as exc:
            raise BadRequest(f"The multipart upload is malformed: {exc}") from None
        except ClientDisconnect:
            raise BadRequest(
                "The client disconnected before the upload was complete; nothing was stored"
            ) from None
        finally:
            with disk_full_is_507("spooling the upload"):  # the last writes, and closing
                pending = spooler.take_pending() if received else []
                await anyio.to_thread.run_sync(_finish, pending, spooler.handles)
        yield spooler.form
    finally:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))


async def _receive(
    stream: AsyncIterable[bytes],
    parser: MultipartParser,
    spooler: _Spooler,
    *,
    max_request_bytes: int,
) -> None:
    """Feed the body to the parser, writing file parts to disk in a thread as they come."""
    body_cap = max_request_bytes + MULTIPART_OVERHEAD
    buffered = received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > body_cap:  # preamble, boundaries, epilogue: bounded too
            raise UploadTooLarge(
                f"The upload is larger than the limit of {_mib(max_request_bytes)} per request"
            )
        parser.write(chunk)
        buffered += len(chunk)
        if buffered >= CHUNK_FLUSH_BYTES:
            await anyio.to_thread.run_sync(_write_all, spooler.take_pending())
            buffered = 0
    parser.finalize()
    if not spooler.complete:
        # python-multipart's finalize() does not check this: a body cut short would otherwise
        # count as whole, and its last file be stored truncated.
        raise BadRequest(
            "The multipart body ends before its closing boundary: the upload is incomplete "
            "(cut off in transit?); nothing was stored"
        )
    # The last buffered writes are made with the closes (spool_multipart's _finish).


def spool_request(
    request: Request, settings: Settings, *, media_type: str = FORM_DATA
) -> AbstractAsyncContextManager[SpooledForm]:
    """A request's multipart body as capped temp files: the one place every upload route
    (form uploads, folder uploads, DICOMweb STOW-RS) gets the same caps from the settings."""
    return spool_multipart(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        max_file_bytes=settings.max_upload_bytes,
        max_request_bytes=settings.max_request_bytes,
        max_files=settings.max_files,
        spool_dir=settings.spool_dir,
        media_type=media_type,
    )
