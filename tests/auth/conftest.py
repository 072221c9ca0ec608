"""Fixtures for the auth tests: an auth-enabled app, tokens, API keys (one per scope)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from dicomgate.app import create_app
from dicomgate.auth.policy import ALL_SCOPES
from dicomgate.auth.service import create_api_key, revoke_api_key
from dicomgate.db import create_engine, create_sessionmaker, session_scope
from dicomgate.settings import Settings
from tests.auth.helpers import AUDIENCE, ISSUER, KID, SECRET


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def auth_settings(
    settings: Settings, rsa_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update(kid=KID, use="sig", alg="RS256")
    jwks = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    return settings.model_copy(
        update={
            "auth_enabled": True,
            "jwt_secret": SECRET,
            "jwks_file": jwks,
            "jwt_issuer": ISSUER,
            "jwt_audience": AUDIENCE,
        }
    )


@pytest.fixture(scope="module")
async def auth_app(auth_settings: Settings) -> AsyncIterator[FastAPI]:
    from pydantic import SecretStr

    auth_settings = auth_settings.model_copy(update={"jwt_secret": SecretStr(SECRET)})
    app = create_app(auth_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def auth_client(auth_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=auth_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test") as c:
        yield c


@pytest.fixture(scope="module")
async def api_keys(auth_settings: Settings) -> dict[str, str]:
    """One key per scope, plus a revoked key that had every scope."""
    engine = create_engine(auth_settings.database_url)
    keys: dict[str, str] = {}
    suffix = str(time.time_ns())
    async with session_scope(create_sessionmaker(engine)) as session:
        for scope in sorted(ALL_SCOPES):
            _, keys[scope] = await create_api_key(
                session, name=f"svc-{scope}-{suffix}", scopes=[scope]
            )
        _, keys["revoked"] = await create_api_key(
            session, name=f"revoked-{suffix}", scopes=sorted(ALL_SCOPES)
        )
        await revoke_api_key(session, name=f"revoked-{suffix}")
    await engine.dispose()
    return keys
