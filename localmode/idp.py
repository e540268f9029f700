"""The embedded identity provider's signing key: moto's cognito-idp signs every token
with the key it ships, and serves its public half as the JWKS of any user pool.

The benchmark and the tests mint access tokens for chosen subjects with it: tokens
signed with the IdP's own key are the IdP's tokens, verified like any other.
"""

from __future__ import annotations

import gzip
import json
import time
from importlib import resources
from typing import Any

import jwt

REGION = "us-east-1"
KEY_ID = "dummy"  # the kid of moto's key, as its tokens and JWKS carry it


def _resource(name: str) -> dict[str, Any]:
    raw = resources.files("moto.cognitoidp").joinpath("resources", name).read_bytes()
    document: dict[str, Any] = json.loads(gzip.decompress(raw))
    return document


SIGNING_KEY = jwt.PyJWK(_resource("jwks-private.json.gz"), algorithm="RS256")
PUBLIC_JWKS = _resource("jwks-public.json.gz")


def issuer(pool_id: str) -> str:
    return f"https://cognito-idp.{REGION}.amazonaws.com/{pool_id}"


def jwks_url(endpoint: str, pool_id: str) -> str:
    """Where the local server serves the pool's JWKS."""
    return f"{endpoint}/{pool_id}/.well-known/jwks.json"


def access_token(pool_id: str, client_id: str, sub: str, *, lifetime: int = 3600, **claims: Any) -> str:
    """An access token of the pool's app client for ``sub``; ``claims`` override or, as None, remove claims."""
    now = int(time.time())
    payload = {
        "iss": issuer(pool_id),
        "sub": sub,
        "client_id": client_id,
        "token_use": "access",
        "iat": now,
        "exp": now + lifetime,
        **claims,
    }
    present = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(present, SIGNING_KEY.key, "RS256", {"kid": KEY_ID})
