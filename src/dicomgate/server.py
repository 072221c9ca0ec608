"""How ``dicomgate serve`` runs uvicorn: httptools, with a cap on the request head.

uvicorn's httptools protocol sets no limit on the request line and headers: httptools grows a
header value (and uvicorn the URL) by concatenating every piece that arrives, so one stranger
sending a 50 MiB header costs quadratic copying on the event loop (health waited 15 s) and, with
a few of them, gigabytes. Here the head is fed to the parser in slices no bigger than what is
left of the cap, and a request still inside its head past ``max_header_bytes`` is answered
``431 Request Header Fields Too Large`` (RFC 6585 §5) without parsing another byte of it.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dicomgate.errors import ErrorBody, RequestHeaderTooLarge

LINGER_SECONDS = 2.0  # after the 431, before the close: time for the client to read it


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request line + headers over ``max_head_bytes``."""

    max_head_bytes: ClassVar[int] = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # a connection opens waiting for a request head
        self._head_bytes = 0
        self._head_ended = False  # did a request head end inside the piece being parsed?
        self._refused = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_ended = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what comes next on this connection is the next request's head
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # after the 431: whatever was already read is dropped unparsed
        while data:
            if not self._in_head:
                super().data_received(data)
                return
            room = self.max_head_bytes - self._head_bytes + 1  # one byte past the cap, at most
            piece, data = data[:room], data[room:]
            self._head_ended = False
            super().data_received(piece)
            if self.parser is None or self.transport.is_closing():
                return
            if self._in_head and not self._head_ended:
                self._head_bytes += len(piece)  # the whole piece is (still) this request's head
            # else a pipelined request began after another's head inside this piece: not
            # charged for it (an undercount of at most one piece, never a 431 within the cap)
            if self._in_head and self._head_bytes > self.max_head_bytes:
                self._refuse()
                return

    def _refuse(self) -> None:
        """Answer 431 and close in stages (RFC 9112 §9.6): half-close, stop reading, and close
        a moment later, so the client reads the answer before any connection reset."""
        self._refused = True
        error = RequestHeaderTooLarge(
            "The request line and headers are larger than this service accepts "
            f"({self.max_head_bytes:,} bytes, DICOMGATE_MAX_HEADER_BYTES)"
        )
        body = json.dumps(ErrorBody(error=error.message, type=error.type).model_dump()).encode()
        head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.pause_reading()  # nothing more of this request is read or parsed
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def bounded_head_protocol(max_head_bytes: int) -> type[BoundedHeadProtocol]:
    """The protocol class uvicorn should serve with, for this cap (uvicorn instantiates it)."""
    return type("BoundedHeadProtocol", (BoundedHeadProtocol,), {"max_head_bytes": max_head_bytes})
