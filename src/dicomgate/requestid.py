"""Request ids: taken from ``X-Request-ID`` (or made), put on every log line, every Orthanc call
made for the request, and the response."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
_SAFE = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # fullmatch: "$" would allow a final "\n"


class RequestIdMiddleware:
    """Accept a caller's well-formed id (for tracing across services) or make a new one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER.lower().encode(), b"").decode("latin-1")
        request_id = given if _SAFE.fullmatch(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (HEADER.lower().encode(), request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, with_header)
        finally:
            REQUEST_ID.reset(token)


async def propagate_to_orthanc(request: httpx.Request) -> None:
    """httpx event hook: Orthanc's logs can be matched with ours."""
    request_id = REQUEST_ID.get()
    if request_id != "-":
        request.headers[HEADER] = request_id


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` for the log format."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True
