"""Verify callers: JWT bearer tokens (HS256 secret or JWKS) and hashed API keys."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

import anyio
import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.auth.models import ApiKey
from dicomgate.auth.policy import ALL_SCOPES
from dicomgate.errors import Conflict, NotFound, Unauthorized, UnprocessableInput
from dicomgate.kit.clock import utcnow
from dicomgate.settings import Settings

ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
KEY_PREFIX = "dg"


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do."""

    subject: str
    scopes: frozenset[str]
    via: str  # "jwt", "api_key" or "disabled"


class JwtVerifier:
    """Checks signature, ``exp``, ``nbf``, ``iss`` and ``aud``; refuses ``none`` and switching.

    Each algorithm family has its own key source: HS256 only with the configured secret, RS256 and
    ES256 only with keys from the JWKS. A token cannot choose HS256 and be checked against a
    public key (the classic algorithm-confusion attack) because HS256 never sees those keys.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._secret = (
            settings.jwt_secret.get_secret_value() if settings.jwt_secret is not None else None
        )
        self._jwks: jwt.PyJWKSet | None = None
        self._jwks_client: jwt.PyJWKClient | None = None
        if settings.jwks_file is not None:
            self._jwks = jwt.PyJWKSet.from_json(settings.jwks_file.read_text())
        if settings.jwks_url is not None:
            self._jwks_client = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300)

    @property
    def configured(self) -> bool:
        return bool(self._secret or self._jwks or self._jwks_client)

    async def _key_for(self, header: dict[str, Any], token: str) -> Any:
        alg = header.get("alg")
        if alg == "HS256" and self._secret:
            return self._secret
        if alg in ASYMMETRIC_ALGORITHMS and (self._jwks or self._jwks_client):
            kid = header.get("kid")
            if self._jwks is not None:
                for key in self._jwks.keys:
                    if kid is None or key.key_id == kid:
                        return key.key
            if self._jwks_client is not None:
                client = self._jwks_client
                try:
                    signing = await anyio.to_thread.run_sync(client.get_signing_key_from_jwt, token)
                except jwt.PyJWKClientError:
                    raise Unauthorized("No key in the JWKS matches the token") from None
                return signing.key
            raise Unauthorized("No key in the JWKS matches the token")
        raise Unauthorized(f"Token algorithm {alg!r} is not accepted")

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("The bearer token is malformed") from None
        key = await self._key_for(header, token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=self._settings.jwt_leeway,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": bool(self._settings.jwt_audience),
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The bearer token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("The bearer token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("The bearer token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("The bearer token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("The bearer token's signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The bearer token is invalid ({type(exc).__name__})") from None
        return Principal(str(claims["sub"]), self._scopes(claims), "jwt")

    def _scopes(self, claims: dict[str, Any]) -> frozenset[str]:
        found: set[str] = set()
        for claim in ("scope", "scp"):
            value = claims.get(claim)
            if isinstance(value, str):
                found.update(value.split())
            elif isinstance(value, list):
                found.update(str(v) for v in value)
        if self._settings.jwt_roles_claim:
            value = claims
            for part in self._settings.jwt_roles_claim.split("."):
                value = value.get(part, {}) if isinstance(value, dict) else {}
            if isinstance(value, list):
                found.update(str(v) for v in value)
        return frozenset(found & ALL_SCOPES)


# --- API keys ---------------------------------------------------------------------------------
def _hash(secret: str) -> str:
    # Keys are 256-bit random secrets: a plain SHA-256 cannot be brute-forced, no KDF needed.
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """``dg_<prefix>_<secret>`` → (prefix, secret), or None when not of that form."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


async def create_api_key(
    session: AsyncSession, *, name: str, scopes: list[str]
) -> tuple[ApiKey, str]:
    """Store a new key (hashed) and return it with the plain key, shown once."""
    unknown = sorted(set(scopes) - ALL_SCOPES)
    if unknown or not scopes:
        raise UnprocessableInput(
            f"Unknown scopes {unknown}; choose from {sorted(ALL_SCOPES)}"
            if unknown
            else "An API key needs at least one scope"
        )
    if not name.strip():
        raise UnprocessableInput("An API key needs a name")
    existing = await session.scalar(select(ApiKey).where(ApiKey.name == name))
    if existing is not None:
        raise Conflict(f"An API key named {name!r} already exists")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = ApiKey(
        name=name, prefix=prefix, secret_hash=_hash(secret), scopes=" ".join(sorted(scopes))
    )
    session.add(row)
    await session.flush()
    return row, f"{KEY_PREFIX}_{prefix}_{secret}"


async def revoke_api_key(session: AsyncSession, *, name: str) -> ApiKey:
    """Mark a key revoked (kept for the audit trail)."""
    row = await session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        raise NotFound(f"No API key named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return row


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    return list(await session.scalars(select(ApiKey).order_by(ApiKey.name)))


async def verify_api_key(session: AsyncSession, *, key: str) -> Principal:
    """The principal of a valid, unrevoked key; Unauthorized otherwise (same message for all)."""
    parts = split_key(key)
    row = None
    if parts is not None:
        row = await session.scalar(select(ApiKey).where(ApiKey.prefix == parts[0]))
    if (
        parts is None
        or row is None
        or not hmac.compare_digest(row.secret_hash, _hash(parts[1]))
        or row.revoked_at is not None
    ):
        raise Unauthorized("The API key is invalid or revoked")
    return Principal(f"apikey:{row.name}", row.scope_set, "api_key")


def describe_key(row: ApiKey) -> str:
    return json.dumps(
        {
            "name": row.name,
            "prefix": row.prefix,
            "scopes": row.scopes.split(),
            "revoked": row.revoked_at is not None,
        }
    )
