"""Redirects point at a path, never at a host the client named.

Starlette's trailing-slash redirect (``/api/ris/health`` → ``/api/ris/health/``) builds an
absolute ``Location`` from the request's Host header, so ``Host: evil.example`` came back as
``Location: http://evil.example/…`` (a poisoned cache or a proxy would send users there). This
pure-ASGI middleware turns any redirect to the request's own host into a relative reference
(RFC 9110 §10.2.2 allows one): path and query only.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RelativeRedirects:
    """Rewrite ``Location: <scheme>://<request host>/path?q`` to ``/path?q`` on 3xx answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()

        async def relative(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                message["headers"] = [
                    (name, _relative(value, host) if name.lower() == b"location" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, relative)


def _relative(location: bytes, host: str) -> bytes:
    try:
        parts = urlsplit(location.decode("latin-1"))
    except ValueError:
        return location
    if not parts.scheme or parts.netloc.lower() != host:
        return location  # already relative, or somewhere else on purpose
    return urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment)).encode("latin-1")
