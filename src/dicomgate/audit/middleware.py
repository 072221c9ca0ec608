"""Pure-ASGI middleware that writes an audit row after every audited route answers.

It sits outside the router, so it sees the final status code (also of refused and failed calls)
and, after routing, the matched route, its path parameters, the caller found by ``authorize``
and what the route and its services noted as touched (``audit.context``). The client address is
the socket peer, or, when ``DICOMGATE_TRUSTED_PROXIES`` names the proxy, the address it
forwarded (uvicorn's ``ProxyHeadersMiddleware``, installed by ``create_app``: the one place).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomgate.audit.context import STATE_KEY
from dicomgate.audit.service import AuditEntry
from dicomgate.auth.policy import AUDITED_ACTIONS

log = logging.getLogger(__name__)

# Query parameters worth keeping (what was asked for): never tokens or free text beyond these.
AUDITED_QUERY = (
    "patient_id",
    "study_id",
    "series_id",
    "search",
    "frame",
    "study_instance_uid",
    "actor",
    "action",
)


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            await self._record(scope, status["code"])

    async def _record(self, scope: Scope, status_code: int) -> None:
        route = scope.get("route")
        path = getattr(route, "path_format", None)
        action = AUDITED_ACTIONS.get((scope["method"], path)) if path else None
        if action is None or path is None:
            return
        trail = getattr(scope["app"].state, "audit_trail", None)
        if trail is None:
            return
        state = scope.get("state", {})
        principal = state.get("principal")
        resource: dict[str, Any] = {k: str(v) for k, v in scope.get("path_params", {}).items()}
        for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            if key in AUDITED_QUERY:
                resource[key] = value[:200]
        noted = state.get(STATE_KEY)
        if isinstance(noted, dict):
            resource.update(noted)
        client = scope.get("client")
        await trail.record(
            AuditEntry(
                at=datetime.datetime.now(datetime.UTC),
                actor=principal.subject if principal is not None else "anonymous",
                action=action,
                method=scope["method"],
                route=path,
                client=client[0] if client else "",
                status_code=status_code,
                resource=resource,
            )
        )
