"""No 500 from caller input (issue 12 item 5): JWT key selection and NumericDates, IDs with a
trailing newline, and a sweep of hostile values through every route's parameters on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from pydantic import SecretStr

from dicomgate.app import create_app
from dicomgate.errors import ConfigurationError
from dicomgate.migrations import upgrade_database
from dicomgate.settings import Settings
from tests.builders import make_dataset, to_bytes
from tests.databases import fresh_database
from tests.orthanc_process import OrthancProcess

AUDIENCE = "dicomgate"
RSA_KID, EC_KID = "rsa-1", "ec-1"
READ = "/api/orthanc/patients/"


# --- JWT ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
async def jwks_app(
    settings: Settings,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[FastAPI]:
    """Auth on, with a JWKS holding an RSA and an EC key (the RSA key first)."""
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    rsa_jwk.update(kid=RSA_KID)
    ec_jwk.update(kid=EC_KID)
    jwks = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwks.write_text(json.dumps({"keys": [rsa_jwk, ec_jwk]}))
    app = create_app(
        settings.model_copy(
            update={"auth_enabled": True, "jwks_file": jwks, "jwt_audience": AUDIENCE}
        )
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def jwks_client(jwks_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=jwks_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def signed(key: Any, alg: str, *, kid: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "viewer", "aud": AUDIENCE, "exp": now + 300, "scope": "dicom:read", **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid} if kid else None)


async def call(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(READ, headers={"Authorization": f"Bearer {token}"})


class TestJwtKeySelection:
    async def test_es256_without_kid_verifies_against_the_ec_key(
        self, jwks_client: httpx.AsyncClient, ec_key: ec.EllipticCurvePrivateKey
    ) -> None:
        r = await call(jwks_client, signed(ec_key, "ES256"))
        assert r.status_code == 200, r.text

    async def test_rs256_without_kid_verifies_against_the_rsa_key(
        self, jwks_client: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey
    ) -> None:
        r = await call(jwks_client, signed(rsa_key, "RS256"))
        assert r.status_code == 200, r.text

    async def test_es256_naming_the_rsa_keys_kid_is_401(
        self, jwks_client: httpx.AsyncClient, ec_key: ec.EllipticCurvePrivateKey
    ) -> None:
        r = await call(jwks_client, signed(ec_key, "ES256", kid=RSA_KID))
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "No ES256 key in the JWKS matches the token (kid 'rsa-1')"

    async def test_es256_from_a_stranger_without_kid_is_401(
        self, jwks_client: httpx.AsyncClient
    ) -> None:
        stranger = ec.generate_private_key(ec.SECP256R1())
        r = await call(jwks_client, signed(stranger, "ES256"))
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "The bearer token's signature is invalid"

    @pytest.mark.parametrize(
        "header",
        [{"alg": ["ES256"]}, {"alg": "ES256", "kid": {"a": 1}}, {"alg": None}, {"alg": "ES512"}],
        ids=["alg-list", "kid-object", "alg-null", "alg-unknown"],
    )
    async def test_odd_headers_are_401(
        self, jwks_client: httpx.AsyncClient, header: dict[str, Any]
    ) -> None:
        segments = [
            jwt.utils.base64url_encode(json.dumps(header).encode()),
            jwt.utils.base64url_encode(b'{"sub": "x", "exp": 9999999999}'),
            jwt.utils.base64url_encode(b"sig"),
        ]
        r = await call(jwks_client, b".".join(segments).decode())
        assert r.status_code == 401, r.text


class TestNumericDates:
    @pytest.mark.parametrize(
        "claims",
        [
            {"exp": "9999999999"},
            {"exp": 1e308},
            {"nbf": "0"},
            {"iat": 10**20},
            {"exp": -5.0},
        ],
        ids=["exp-string", "exp-1e308", "nbf-string", "iat-huge", "exp-negative"],
    )
    async def test_a_non_numeric_date_is_401(
        self,
        jwks_client: httpx.AsyncClient,
        ec_key: ec.EllipticCurvePrivateKey,
        claims: dict[str, Any],
    ) -> None:
        r = await call(jwks_client, signed(ec_key, "ES256", **claims))
        assert r.status_code == 401, r.text
        assert r.json()["type"] == "Unauthorized"

    async def test_string_exp_names_the_rule(
        self, jwks_client: httpx.AsyncClient, ec_key: ec.EllipticCurvePrivateKey
    ) -> None:
        r = await call(jwks_client, signed(ec_key, "ES256", exp="9999999999"))
        assert r.json()["error"] == (
            "The bearer token's 'exp' is not a NumericDate (a number of seconds between 1970 "
            "and 9999)"
        )

    async def test_fractional_seconds_are_fine(
        self, jwks_client: httpx.AsyncClient, ec_key: ec.EllipticCurvePrivateKey
    ) -> None:
        r = await call(jwks_client, signed(ec_key, "ES256", exp=time.time() + 300.5))
        assert r.status_code == 200, r.text


def test_jwts_without_an_audience_refuse_to_start(settings: Settings) -> None:
    unsafe = settings.model_copy(
        update={
            "auth_enabled": True,
            "jwt_secret": SecretStr("s" * 40),
            "jwt_audience": None,
        }
    )
    with pytest.raises(ConfigurationError, match="DICOMGATE_JWT_AUDIENCE is not set"):
        create_app(unsafe)


# --- IDs and every other parameter --------------------------------------------------------------
ID_ROUTES = [
    ("GET", "/api/orthanc/instances/{instance}/file/"),
    ("GET", "/api/orthanc/instances/{instance}/preview/"),
    ("GET", "/api/orthanc/patients/{patient}/images/"),
    ("DELETE", "/api/orthanc/patients/{patient}/"),
    ("DELETE", "/api/orthanc/studies/{study}/"),
    ("DELETE", "/api/orthanc/series/{series}/"),
    ("DELETE", "/api/orthanc/instances/{instance}/"),
]


class TestIdsWithATrailingNewline:
    async def test_all_seven_routes_answer_404_and_delete_nothing(
        self, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        stored = clean_orthanc.store(to_bytes(make_dataset()))
        ids = {
            "instance": stored["ID"],
            "patient": stored["ParentPatient"],
            "study": stored["ParentStudy"],
            "series": stored["ParentSeries"],
        }
        for method, template in ID_ROUTES:
            path = template.format(**{k: quote(v + "\n", safe="") for k, v in ids.items()})
            r = await client.request(method, path)
            assert r.status_code == 404, (method, template, r.status_code, r.text)
            assert r.json()["type"] == "NotFound"
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{clean_orthanc.url}/instances/{ids['instance']}")).is_success


HOSTILE = [
    "x\n",
    "\x00",
    "a\x00b",
    "\r\n",
    "é😀",
    "A" * 5000,
    "-1",
    "99999999999999999999",
    "1e308",
    "../..",
    "%",
    "\\",
    "'; DROP TABLE patients;--",
    "\ud800",
]


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {})
            if body and "application/json" not in body:
                continue  # multipart routes: see the upload fuzz and test_multipart
            found.append((method.upper(), path, op))
    return found


def _schema_properties(app: FastAPI, op: dict[str, Any]) -> list[str]:
    ref = op["requestBody"]["content"]["application/json"]["schema"].get("$ref", "")
    schema = app.openapi()["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
    return list(schema.get("properties", {}))


async def sweep(client: httpx.AsyncClient, app: FastAPI) -> list[str]:
    """Every JSON/no-body operation with each hostile value in each parameter and body field;
    returns what answered 5xx."""
    failures = []
    for method, path, op in _operations(app):
        if path == "/api/ris/conversions/" and method == "POST":
            names = ["study_instance_uid", "patient_id"]  # never {"all": true}
        else:
            names = _schema_properties(app, op) if "requestBody" in op else []
        params = [p for p in op.get("parameters", []) if p["in"] in ("path", "query")]
        for value in HOSTILE:
            safe = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            url = path
            for p in params:
                if p["in"] == "path":
                    url = url.replace("{" + p["name"] + "}", quote(safe, safe=""))
            query = {p["name"]: safe for p in params if p["in"] == "query"}
            kwargs: dict[str, Any] = {"params": query}
            if names:
                kwargs["json"] = {name: safe for name in names}
            r = await client.request(method, url, **kwargs)
            if r.status_code >= 500:
                failures.append(f"{method} {path} {value[:20]!r}: {r.status_code} {r.text[:200]}")
    return failures


@pytest.fixture(scope="module")
async def postgres_app(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    async with fresh_database(
        "postgresql", tmp_path_factory.mktemp("sweep-db"), prefix="sweep"
    ) as url:
        on_postgres = settings.model_copy(
            update={"database_url": url, "journal_dir": tmp_path_factory.mktemp("sweep-j")}
        )
        await asyncio.to_thread(upgrade_database, on_postgres)
        app = create_app(on_postgres)
        async with app.router.lifespan_context(app):
            yield app


class TestSweep:
    async def test_no_parameter_value_makes_a_500_on_sqlite(
        self, app: FastAPI, client: httpx.AsyncClient, clean_orthanc: OrthancProcess
    ) -> None:
        failures = await sweep(client, app)
        assert not failures, "\n".join(failures)

    async def test_no_parameter_value_makes_a_500_on_postgresql(
        self, postgres_app: FastAPI, clean_orthanc: OrthancProcess
    ) -> None:
        transport = httpx.ASGITransport(app=postgres_app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            failures = await sweep(client, postgres_app)
            assert not failures, "\n".join(failures)

    async def test_hostile_api_keys_are_401_on_postgresql(self, postgres_app: FastAPI) -> None:
        """Header values a socket cannot carry still must not reach the database (ASGI can)."""
        from dicomgate.auth.service import verify_api_key
        from dicomgate.db import session_scope
        from dicomgate.errors import Unauthorized

        for key in ("dg_0123456789ab\x00_" + "a" * 43, "\x00", "dg_" + "é" * 12 + "_" + "a" * 43):
            async with session_scope(postgres_app.state.runtime.sessions) as session:
                with pytest.raises(Unauthorized, match="invalid or revoked"):
                    await verify_api_key(session, key=key)


async def test_the_orthanc_boundary_maps_an_unusable_id_to_404(orthanc: OrthancProcess) -> None:
    """Defence in depth under the ID check: an identifier httpx cannot put in a URL is a
    NotFound at the client's boundary, whichever route let it through."""
    from dicomgate.errors import NotFound
    from dicomgate.orthanc import OrthancClient

    async with httpx.AsyncClient(base_url=orthanc.url) as http:
        with pytest.raises(NotFound):
            await OrthancClient(http).instance_header("abc\n")
