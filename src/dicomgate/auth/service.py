"""Verify callers: JWT bearer tokens (HS256 secret or JWKS) and hashed API keys."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
from dataclasses import dataclass
from functools import partial
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
# RFC 7519 §2 NumericDate: a JSON number of seconds; past year 9999 it is no date at all.
NUMERIC_DATE_CLAIMS = ("exp", "nbf", "iat")
LATEST_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z


def require_numeric_dates(claims: dict[str, Any]) -> None:
    """``exp``, ``nbf`` and ``iat``, when present, must be NumericDates (RFC 7519 §2, §4.1.4–6):
    numbers (not strings or booleans), finite, between 1970 and 9999."""
    for name in NUMERIC_DATE_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= LATEST_NUMERIC_DATE
        ):
            raise Unauthorized(
                f"The bearer token's {name!r} is not a NumericDate (a number of seconds "
                "between 1970 and 9999)"
            )


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
    JWKS keys are chosen by the token's algorithm (a key's ``alg``, else its type and curve:
    RFC 7518 §3.1) and, when the token names one, its ``kid`` (RFC 7515 §4.1.4); without a
    ``kid`` every key of the right algorithm is tried.
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

    async def _published_keys(self, *, refresh: bool = False) -> list[jwt.PyJWK]:
        """The JWKS's keys: the file's, and the URL's (fetched in a thread, cached)."""
        keys = list(self._jwks.keys) if self._jwks is not None else []
        if self._jwks_client is not None:
            client = self._jwks_client
            try:
                keys += await anyio.to_thread.run_sync(partial(client.get_signing_keys, refresh))
            except jwt.PyJWKClientError:
                raise Unauthorized("The identity provider's keys (JWKS) cannot be read") from None
        return keys

    async def _keys_for(self, header: dict[str, Any]) -> list[Any]:
        """The keys a token with this header may be checked against (empty: none fits)."""
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise Unauthorized("The bearer token's header has no valid 'alg'")
        if alg == "HS256" and self._secret:
            return [self._secret]
        if alg not in ASYMMETRIC_ALGORITHMS or not (self._jwks or self._jwks_client):
            raise Unauthorized(f"Token algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("The bearer token's 'kid' is not a string")

        def fitting(keys: list[jwt.PyJWK]) -> list[Any]:
            return [
                key.key
                for key in keys
                if key.algorithm_name == alg
                and key.public_key_use in (None, "sig")
                and (kid is None or key.key_id == kid)
            ]

        found = fitting(await self._published_keys())
        if not found and kid is not None and self._jwks_client is not None:
            found = fitting(await self._published_keys(refresh=True))  # keys may have rotated
        if not found:
            raise Unauthorized(
                f"No {alg} key in the JWKS matches the token"
                + (f" (kid {kid[:64]!r})" if kid is not None else "")
            )
        return found

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("The bearer token is malformed") from None
        keys = await self._keys_for(header)
        claims: dict[str, Any] | None = None
        for index, key in enumerate(keys):
            try:
                claims = self._decode(token, key, header["alg"])
                break
            except jwt.InvalidSignatureError:
                if index == len(keys) - 1:
                    raise Unauthorized("The bearer token's signature is invalid") from None
        assert claims is not None
        require_numeric_dates(claims)
        return Principal(str(claims["sub"]), self._scopes(claims), "jwt")

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        """Verify the signature and the registered claims; InvalidSignatureError propagates
        (the next key may fit), every other failure is a 401 saying what was wrong."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=self._settings.jwt_leeway,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": bool(self._settings.jwt_audience),
                },
            )
        except jwt.InvalidSignatureError:
            raise
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The bearer token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("The bearer token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("The bearer token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("The bearer token is from another issuer") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The bearer token is invalid ({type(exc).__name__})") from None
        except (ValueError, TypeError):  # a signature or key that cryptography cannot read
            raise Unauthorized("The bearer token is invalid (unreadable signature)") from None
        return claims

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


# What create_api_key makes: 12 hex digits (token_hex(6)), then url-safe base64 (token_urlsafe).
_KEY_FORM = re.compile(r"dg_([0-9a-f]{12})_([A-Za-z0-9_-]{20,128})")


def split_key(key: str) -> tuple[str, str] | None:
    """``dg_<prefix>_<secret>`` → (prefix, secret), or None when not of that form (nothing else
    reaches the database: PostgreSQL would refuse a NUL, for one)."""
    found = _KEY_FORM.fullmatch(key)
    return (found.group(1), found.group(2)) if found else None


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
