"""Authentication and authorization: every route × every kind of caller, on the real app."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.routing import APIRoute

from dicomgate.app import create_app
from dicomgate.auth.policy import ALL_SCOPES, ROUTE_SCOPES
from dicomgate.errors import ConfigurationError
from dicomgate.settings import Settings
from tests.auth.helpers import AUDIENCE, ISSUER, KID, SECRET, token, unsigned_token


def forge_hs256(secret: bytes) -> str:
    import base64
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims = {
        "sub": "mallory",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 300,
        "scope": " ".join(sorted(ALL_SCOPES)),
    }
    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
        + "."
        + b64(json.dumps(claims).encode())
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves: the OpenAPI operations plus the hidden doc pages.

    (FastAPI ≥ 0.16x nests included routers, so ``app.routes`` alone no longer lists them.)
    """
    out = {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}
    for route in app.routes:
        if isinstance(route, APIRoute):
            out.update((method, route.path_format) for method in route.methods)
    return sorted(out)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "0000-no-such-id", path)


class TestPolicyCoversEveryRoute:
    async def test_no_route_is_unclassified(self, auth_app: FastAPI) -> None:
        routes = set(app_routes(auth_app))
        missing = sorted(routes - set(ROUTE_SCOPES))
        assert not missing, f"routes with no scope in dicomgate.auth.policy: {missing}"

    async def test_policy_names_no_route_that_does_not_exist(self, auth_app: FastAPI) -> None:
        stale = sorted(set(ROUTE_SCOPES) - set(app_routes(auth_app)))
        assert not stale, f"policy entries for routes that no longer exist: {stale}"


class TestRouteCallerMatrix:
    """Every route × anonymous, broken tokens, each scope alone, admin, API keys, revoked key."""

    async def test_matrix(
        self,
        auth_app: FastAPI,
        auth_client: httpx.AsyncClient,
        api_keys: dict[str, str],
        rsa_key: rsa.RSAPrivateKey,
    ) -> None:
        other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_pem = rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        bad_callers: dict[str, dict[str, str]] = {
            "anonymous": {},
            "expired": {
                "Authorization": "Bearer " + token(sorted(ALL_SCOPES), exp=int(time.time()) - 3600)
            },
            "not yet valid": {
                "Authorization": "Bearer " + token(sorted(ALL_SCOPES), nbf=int(time.time()) + 3600)
            },
            "wrong signature": {
                "Authorization": "Bearer "
                + token(sorted(ALL_SCOPES), key="another-secret-another-secret-another-secret")
            },
            "wrong RSA key": {
                "Authorization": "Bearer " + token(sorted(ALL_SCOPES), alg="RS256", key=other_rsa)
            },
            "wrong audience": {
                "Authorization": "Bearer " + token(sorted(ALL_SCOPES), aud="other-service")
            },
            "wrong issuer": {
                "Authorization": "Bearer " + token(sorted(ALL_SCOPES), iss="https://evil.test")
            },
            "alg none": {"Authorization": "Bearer " + unsigned_token(sorted(ALL_SCOPES))},
            "garbage token": {"Authorization": "Bearer not.a.jwt"},
            "revoked api key": {"X-API-Key": api_keys["revoked"]},
            "unknown api key": {"X-API-Key": "dg_000000000000_nope"},
        }
        # Algorithm switching: HS256 "signed" with the RSA public key (PEM) as the HMAC secret,
        # forged by hand because PyJWT itself refuses to sign that way.
        bad_callers["alg switch"] = {"Authorization": "Bearer " + forge_hs256(public_pem)}
        scoped: dict[str, dict[str, str]] = {}
        for scope in sorted(ALL_SCOPES):
            scoped[f"jwt {scope}"] = {"Authorization": "Bearer " + token([scope])}
            scoped[f"rs256 {scope}"] = {
                "Authorization": "Bearer " + token([scope], alg="RS256", key=rsa_key)
            }
            scoped[f"apikey {scope}"] = {"X-API-Key": api_keys[scope]}

        failures: list[str] = []
        for method, path in app_routes(auth_app):
            required = ROUTE_SCOPES[(method, path)]
            url = concrete(path)
            for name, headers in bad_callers.items():
                r = await auth_client.request(method, url, headers=headers)
                if required is None:
                    if r.status_code in (401, 403):
                        failures.append(f"{method} {path} [{name}] public but {r.status_code}")
                elif (
                    r.status_code != 401
                    or "WWW-Authenticate" not in r.headers
                    or r.json().get("success") is not False
                ):
                    failures.append(f"{method} {path} [{name}] expected 401, {r.status_code}")
            for name, headers in scoped.items():
                scope = name.split(" ", 1)[1]
                r = await auth_client.request(method, url, headers=headers)
                allowed = required is None or scope == required
                if allowed and r.status_code in (401, 403):
                    failures.append(f"{method} {path} [{name}] allowed but {r.status_code}")
                if not allowed and (r.status_code != 403 or r.json()["type"] != "Forbidden"):
                    failures.append(f"{method} {path} [{name}] expected 403, {r.status_code}")
        assert not failures, "\n".join(failures)

    async def test_forbidden_names_the_missing_scope(self, auth_client: httpx.AsyncClient) -> None:
        r = await auth_client.delete(
            "/api/orthanc/patients/x/", headers={"Authorization": "Bearer " + token(["dicom:read"])}
        )
        assert r.status_code == 403
        assert r.json() == {
            "success": False,
            "type": "Forbidden",
            "error": "This route needs the scope 'dicom:delete'",
        }

    async def test_expired_token_message(self, auth_client: httpx.AsyncClient) -> None:
        r = await auth_client.get(
            "/api/orthanc/patients/",
            headers={
                "Authorization": "Bearer " + token(["dicom:read"], exp=int(time.time()) - 3600)
            },
        )
        assert r.status_code == 401
        assert r.json()["error"] == "The bearer token has expired"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_roles_claim_grants_scopes(self, auth_settings: Settings) -> None:
        from pydantic import SecretStr

        from dicomgate.auth.service import JwtVerifier

        verifier = JwtVerifier(
            auth_settings.model_copy(
                update={"jwt_secret": SecretStr(SECRET), "jwt_roles_claim": "realm_access.roles"}
            )
        )
        principal = await verifier.verify(
            token([], realm_access={"roles": ["dicom:read", "not-a-scope"]})
        )
        assert principal.scopes == frozenset({"dicom:read"})
        assert principal.subject == "dr.house"


class TestSecureByDefault:
    def test_refuses_to_build_without_keys(self, settings: Settings) -> None:
        unsafe = settings.model_copy(
            update={"auth_enabled": True, "jwt_secret": None, "jwks_url": None, "jwks_file": None}
        )
        with pytest.raises(ConfigurationError, match="DICOMGATE_AUTH_ENABLED=false"):
            create_app(unsafe)

    def test_refuses_a_short_hs256_secret(self, settings: Settings) -> None:
        from pydantic import SecretStr

        weak = settings.model_copy(update={"auth_enabled": True, "jwt_secret": SecretStr("s3cr3t")})
        with pytest.raises(ConfigurationError, match="too short"):
            create_app(weak)

    def test_serve_exits_with_the_reason(self, settings: Settings) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMGATE_")}
        env.update(
            DICOMGATE_DATABASE_URL=settings.database_url, DICOMGATE_ORTHANC_URL=settings.orthanc_url
        )
        proc = subprocess.run(
            [sys.executable, "-m", "dicomgate.cli", "serve", "--port", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2
        assert "no JWT key is configured" in proc.stderr

    async def test_health_warns_when_auth_is_off(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/api/ris/health/")).json()
        assert any("AUTHENTICATION IS DISABLED" in w for w in body["warnings"])

    async def test_health_has_no_warning_with_auth(self, auth_client: httpx.AsyncClient) -> None:
        r = await auth_client.get("/api/ris/health/")
        assert r.status_code == 200, r.text
        assert r.json()["warnings"] == []


class TestOpenAPISecurity:
    async def test_schemes_and_per_route_requirements(self, auth_client: httpx.AsyncClient) -> None:
        schema = (await auth_client.get("/openapi.json")).json()
        schemes = schema["components"]["securitySchemes"]
        assert schemes["bearer"] == {
            "type": "http",
            "scheme": "bearer",
            "description": "JWT from the identity provider",
        }
        assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
        delete = schema["paths"]["/api/orthanc/instances/{orthanc_id}/"]["delete"]
        assert delete["security"] == [{"bearer": ["dicom:delete"]}, {"apiKey": ["dicom:delete"]}]
        assert "security" not in schema["paths"]["/api/ris/health/"]["get"]


async def _audit_actions(database_url: str, key_name: str) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from dicomgate.audit.models import AuditEvent
    from dicomgate.db import create_engine, create_sessionmaker, session_scope

    engine = create_engine(database_url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            rows = await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.resource.contains(key_name))
                .order_by(AuditEvent.id)
            )
            return [(r.action, r.outcome) for r in rows if r.actor.startswith("cli:")]
    finally:
        await engine.dispose()


class TestApiKeyCommand:
    def test_create_use_and_revoke(self, auth_settings: Settings, auth_app: FastAPI) -> None:
        env = dict(os.environ, DICOMGATE_DATABASE_URL=auth_settings.database_url)
        name = f"pacs-router-{time.time_ns()}"
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "dicomgate.cli",
                "apikey",
                "create",
                "--name",
                name,
                "--scopes",
                "dicom:read,dicom:write",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stderr
        key = re.search(r"key \(shown once, store it now\): (\S+)", created.stdout)
        assert key is not None
        assert json.loads(created.stdout.splitlines()[0])["scopes"] == ["dicom:read", "dicom:write"]
        listed = subprocess.run(
            [sys.executable, "-m", "dicomgate.cli", "apikey", "list"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert name in listed.stdout and key.group(1) not in listed.stdout
        revoked = subprocess.run(
            [sys.executable, "-m", "dicomgate.cli", "apikey", "revoke", "--name", name],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert revoked.returncode == 0 and '"revoked": true' in revoked.stdout
        audit = asyncio.run(_audit_actions(auth_settings.database_url, name))
        assert audit == [("apikey_create", "success"), ("apikey_revoke", "success")]

    def test_unknown_scope_is_refused(self, auth_settings: Settings) -> None:
        env = dict(os.environ, DICOMGATE_DATABASE_URL=auth_settings.database_url)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dicomgate.cli",
                "apikey",
                "create",
                "--name",
                "x",
                "--scopes",
                "dicom:everything",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1
        assert "Unknown scopes ['dicom:everything']" in proc.stdout
