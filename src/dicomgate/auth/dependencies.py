"""The one authorization dependency every route passes through (installed app-wide)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from dicomgate.auth.policy import ALL_SCOPES, UNCLASSIFIED, required_scope
from dicomgate.auth.service import JwtVerifier, Principal, verify_api_key
from dicomgate.db import session_scope
from dicomgate.errors import DatabaseUnavailable, Forbidden, Unauthorized
from dicomgate.runtime import Runtime

log = logging.getLogger(__name__)

bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="JWT from the identity provider"
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="Service-to-service key (`dicomgate apikey create`)",
)

DISABLED = Principal("anonymous (authentication disabled)", ALL_SCOPES, "disabled")


async def authorize(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    api_key: Annotated[str | None, Security(api_key_scheme)],
) -> Principal | None:
    """Find the route's scope in the policy, identify the caller, and check the scope."""
    route = request.scope.get("route")
    path = str(getattr(route, "path_format", None) or getattr(route, "path", ""))
    scope = required_scope(request.method, path)
    if scope is None:
        return None
    principal = await _identify(request, credentials, api_key)
    request.state.principal = principal
    if scope is UNCLASSIFIED:
        log.error("Route %s %s has no scope in auth.policy; refused", request.method, path)
        raise Forbidden("This route has no access policy; it is refused to everyone")
    if scope not in principal.scopes:
        raise Forbidden(f"This route needs the scope {scope!r}")
    return principal


async def _identify(
    request: Request, credentials: HTTPAuthorizationCredentials | None, api_key: str | None
) -> Principal:
    """The caller of ``request`` (everyone, with authentication off), or Unauthorized."""
    if not request.app.state.settings.auth_enabled:
        return DISABLED
    runtime: Runtime = request.app.state.runtime
    if credentials is not None:
        verifier: JwtVerifier = request.app.state.jwt_verifier
        return await verifier.verify(credentials.credentials)
    if api_key:
        async with session_scope(runtime.sessions) as session:
            return await verify_api_key(session, key=api_key)
    raise Unauthorized("Authentication required: send a bearer token or an X-API-Key")


async def optional_caller(request: Request) -> Principal | None:
    """For public routes that say more to a known caller (health): the caller when the request
    carries a valid credential (or authentication is off), else None; never an error."""
    try:
        return await _identify(request, await bearer_scheme(request), await api_key_scheme(request))
    except (Unauthorized, DatabaseUnavailable):
        return None


AuthorizeDep = Depends(authorize)
