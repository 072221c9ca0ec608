"""ES256 tokens checked against a JWKS served over HTTP, and CORS for the browser front end."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from dicomgate.app import create_app
from dicomgate.settings import Settings

KID = "es-key-1"
ORIGIN = "https://ris.hospital.test"


@pytest.fixture(scope="module")
def es_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def jwks_url(es_key: ec.EllipticCurvePrivateKey) -> Iterator[str]:
    """A loopback identity provider publishing the public key."""
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(es_key.public_key()))
    jwk.update(kid=KID, use="sig", alg="ES256")
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()


@pytest.fixture(scope="module")
async def es_app(settings: Settings, jwks_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings.model_copy(
            update={
                "auth_enabled": True,
                "jwks_url": jwks_url,
                "jwt_audience": "dicomgate",
                "cors_origins": [ORIGIN],
            }
        )
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def es_client(es_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=es_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def es_token(key: ec.EllipticCurvePrivateKey, *, kid: str = KID, scope: str = "dicom:read") -> str:
    now = int(time.time())
    claims = {"sub": "viewer", "exp": now + 300, "scope": scope, "aud": "dicomgate"}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


class TestJwksOverHttp:
    async def test_es256_token_from_the_jwks_is_accepted(
        self, es_client: httpx.AsyncClient, es_key: ec.EllipticCurvePrivateKey
    ) -> None:
        r = await es_client.get(
            "/api/orthanc/patients/", headers={"Authorization": f"Bearer {es_token(es_key)}"}
        )
        assert r.status_code == 200, r.text

    async def test_unknown_kid_is_401(
        self, es_client: httpx.AsyncClient, es_key: ec.EllipticCurvePrivateKey
    ) -> None:
        token = es_token(es_key, kid="rotated-away")
        r = await es_client.get(
            "/api/orthanc/patients/", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 401
        assert (
            r.json()["error"] == "No ES256 key in the JWKS matches the token (kid 'rotated-away')"
        )

    async def test_token_from_another_key_is_401(self, es_client: httpx.AsyncClient) -> None:
        other = ec.generate_private_key(ec.SECP256R1())
        r = await es_client.get(
            "/api/orthanc/patients/", headers={"Authorization": f"Bearer {es_token(other)}"}
        )
        assert r.status_code == 401
        assert r.json()["error"] == "The bearer token's signature is invalid"

    async def test_hs256_is_refused_when_only_a_jwks_is_configured(
        self, es_client: httpx.AsyncClient
    ) -> None:
        token = jwt.encode(
            {"sub": "x", "exp": int(time.time()) + 60, "scope": "dicom:read"},
            "a-secret-that-is-long-enough-for-hs256-000000",
            algorithm="HS256",
        )
        r = await es_client.get(
            "/api/orthanc/patients/", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 401
        assert r.json()["error"] == "Token algorithm 'HS256' is not accepted"


class TestCors:
    async def test_preflight_from_the_configured_origin(self, es_client: httpx.AsyncClient) -> None:
        r = await es_client.options(
            "/api/orthanc/patients/",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
        assert r.status_code == 200
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN

    async def test_other_origins_get_no_cors_grant(self, es_client: httpx.AsyncClient) -> None:
        r = await es_client.options(
            "/api/orthanc/patients/",
            headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"},
        )
        assert "Access-Control-Allow-Origin" not in r.headers
