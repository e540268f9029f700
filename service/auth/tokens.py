"""Verifying Cognito access tokens with PyJWT.

A token is accepted only if it is signed with RS256 by a key of the identity
provider's JWKS (``alg: none``, HS256 and unknown keys are refused by
construction: PyJWT is given one algorithm and one public key), its ``iss`` is
the configured issuer, its ``client_id`` the configured app client, its
``token_use`` is ``access``, it is within ``exp``/``nbf`` with 30 s of leeway,
and its ``sub`` is a UUID.

The JWKS is fetched at start-up and again when a token names a key it does not
hold, at most once a minute, so a forged ``kid`` cannot make the service hammer
the provider. Verified tokens are remembered until they expire (bounded), so
the signature check runs once per token rather than once per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt

from service.domain.identity import ROLES, Identity, Unauthenticated
from service.http.schemas import canonical_uuid

LEEWAY_SECONDS = 30
JWKS_REFRESH_SECONDS = 60.0
VERIFIED_CACHE_SIZE = 10_000


class TokenVerifier:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        jwks_url: str,
        issuer: str,
        client_id: str,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._jwks_url = jwks_url
        self._issuer = issuer
        self._client_id = client_id
        self._clock = clock
        self._monotonic = monotonic
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._fetching: asyncio.Task[None] | None = None
        # token -> (identity, exp): insertion-ordered, the oldest dropped first.
        self._verified: dict[str, tuple[Identity, float]] = {}

    async def refresh_keys(self) -> None:
        """Fetch the JWKS now (at start-up); concurrent callers share one fetch."""
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch())
        try:
            await asyncio.shield(self._fetching)
        finally:
            self._fetching = None

    async def _fetch(self) -> None:
        self._fetched_at = self._monotonic()
        async with self._http.get(self._jwks_url) as response:
            response.raise_for_status()
            document = await response.json(content_type=None)
        keys = {}
        for entry in document.get("keys", []):
            if entry.get("kty") == "RSA" and entry.get("kid"):
                keys[entry["kid"]] = jwt.PyJWK(entry, algorithm="RS256")
        self._keys = keys

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys and self._monotonic() - self._fetched_at >= JWKS_REFRESH_SECONDS:
            # An unreachable provider leaves the token unverifiable, hence refused.
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                await self.refresh_keys()
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("the token is not signed by a key of the identity provider")
        return key

    async def verify(self, token: str) -> Identity:
        remembered = self._verified.get(token)
        if remembered is not None:
            identity, expires = remembered
            if self._clock() <= expires + LEEWAY_SECONDS:
                return identity
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the token is malformed") from None
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise Unauthenticated("the token must be signed with RS256 by the identity provider")
        key = await self._key(header["kid"])
        claims = self._decode(token, key)
        identity = self._identity(claims)
        self._remember(token, identity, float(claims["exp"]))
        return identity

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=["RS256"],
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is invalid") from None
        return claims

    def _identity(self, claims: dict[str, Any]) -> Identity:
        if claims.get("token_use") != "access":
            raise Unauthenticated("an access token is required")
        if claims.get("client_id") != self._client_id:
            raise Unauthenticated("the token was issued to another client")
        user_id = canonical_uuid(claims.get("sub"))
        if user_id is None:
            raise Unauthenticated("the token's subject is not a user id")
        groups = claims.get("cognito:groups") or []
        roles = frozenset(group for group in groups if isinstance(group, str)) & ROLES
        return Identity(user_id, roles)

    def _remember(self, token: str, identity: Identity, expires: float) -> None:
        while len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (identity, expires)
