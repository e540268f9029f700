"""The embedded identity provider: moto's cognito-idp, served by the local moto
server beside DynamoDB.

``create_user_pool`` sets it up as the stack sets up Cognito in production (a
pool whose users sign in by email, the password policy, an app client without
a secret for ``USER_PASSWORD_AUTH`` and refresh, the role groups) and
``ensure_admin`` makes the local admin.

moto signs every token with the key it ships, and serves its public half as
the JWKS of any user pool. The benchmark and the tests mint access tokens for
chosen subjects with it: tokens signed with the IdP's own key are the IdP's
tokens, verified like any other.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import time
from importlib import resources
from typing import Any

import jwt

from service.aws import aws_client
from service.domain.identity import ROLES
from service.settings import Settings, cognito_issuer

REGION = "us-east-1"
KEY_ID = "dummy"  # the kid of moto's key, as its tokens and JWKS carry it


def _resource(name: str) -> dict[str, Any]:
    raw = resources.files("moto.cognitoidp").joinpath("resources", name).read_bytes()
    document: dict[str, Any] = json.loads(gzip.decompress(raw))
    return document


SIGNING_KEY = jwt.PyJWK(_resource("jwks-private.json.gz"), algorithm="RS256")
PUBLIC_JWKS = _resource("jwks-public.json.gz")


# The stack's policy (deploy/stack.yaml's UserPool), so local mode refuses the passwords production refuses.
PASSWORD_POLICY = {
    "MinimumLength": 8,
    "RequireUppercase": True,
    "RequireLowercase": True,
    "RequireNumbers": True,
    "RequireSymbols": True,
}
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "LocalAdmin1!"  # noqa: S105 - local mode's documented default


def issuer(pool_id: str) -> str:
    return cognito_issuer(pool_id)


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


async def create_user_pool(settings: Settings, endpoint: str, name: str = "learning-stats-local") -> Settings:
    """A new user pool, app client and role groups at ``endpoint``; ``settings`` configured to use them."""
    async with aws_client(settings, "cognito-idp", endpoint) as idp:
        pool = await idp.create_user_pool(
            PoolName=name,
            UsernameAttributes=["email"],
            AutoVerifiedAttributes=["email"],
            UsernameConfiguration={"CaseSensitive": False},
            Policies={"PasswordPolicy": PASSWORD_POLICY},
        )
        pool_id = pool["UserPool"]["Id"]
        client = await idp.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName="app",
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            PreventUserExistenceErrors="ENABLED",
        )
        for role in sorted(ROLES):
            await idp.create_group(UserPoolId=pool_id, GroupName=role)
    return dataclasses.replace(
        settings,
        cognito_user_pool_id=pool_id,
        cognito_endpoint=endpoint,
        auth_client_id=client["UserPoolClient"]["ClientId"],
        auth_issuer=issuer(pool_id),
        auth_jwks_url=jwks_url(endpoint, pool_id),
    )


def admin_credentials() -> tuple[str, str]:
    """The local admin's email and password: ``STATS_ADMIN_EMAIL`` / ``STATS_ADMIN_PASSWORD``, or the defaults."""
    return (
        os.environ.get("STATS_ADMIN_EMAIL") or ADMIN_EMAIL,
        os.environ.get("STATS_ADMIN_PASSWORD") or ADMIN_PASSWORD,
    )
