"""Helpers for the auth tests: the keys and issuers of the test identity provider, tokens."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt

SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


ISSUER = "https://idp.hospital.test"


AUDIENCE = "dicomgate"


KID = "test-rsa-1"


def token(scopes: list[str], *, alg: str = "HS256", key: Any = SECRET, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "dr.house",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "scope": " ".join(scopes),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    headers = {"kid": KID} if alg == "RS256" else None
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def unsigned_token(scopes: list[str]) -> str:
    """``alg: none``: a token with no signature at all."""
    import base64

    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return (
        b64({"alg": "none", "typ": "JWT"})
        + "."
        + b64(
            {
                "sub": "mallory",
                "iss": ISSUER,
                "aud": AUDIENCE,
                "exp": now + 300,
                "scope": " ".join(scopes),
            }
        )
        + "."
    )
