"""Pure-ASGI middleware that writes an audit row after every audited route answers.

It sits outside the router, so it sees the final status code (also of refused and failed calls)
and, after routing, the matched route, its path parameters and the caller found by ``authorize``.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomgate.audit.service import record_event
from dicomgate.auth.policy import AUDITED_ACTIONS
from dicomgate.db import session_scope

log = logging.getLogger(__name__)

AUDITED_QUERY = ("patient_id", "study_id", "series_id", "search")


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
        if action is None:
            return
        app = scope["app"]
        runtime = getattr(app.state, "runtime", None)
        if runtime is None:
            return
        principal = scope.get("state", {}).get("principal")
        resource: dict[str, Any] = dict(scope.get("path_params", {}))
        for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            if key in AUDITED_QUERY:
                resource[key] = value
        extra = scope.get("state", {}).get("audit_resource")
        if isinstance(extra, dict):
            resource.update(extra)
        client = scope.get("client")
        try:
            async with session_scope(runtime.sessions) as session:
                await record_event(
                    session,
                    actor=principal.subject if principal is not None else "anonymous",
                    action=action,
                    resource=json.dumps(resource, sort_keys=True),
                    client=client[0] if client else "",
                    status_code=status_code,
                )
        except Exception:  # an audit failure must be loud but must not change the answer
            log.exception("Could not write the audit event for %s %s", scope["method"], path)
