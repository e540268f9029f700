"""Learners registered in the bench's user pool through Cognito's own API, the calls
``POST /auth/register`` and ``POST /auth/login`` make (confirmed by the admin call,
as no email is read here), for the refresh tokens the ``refresh`` scenario spends.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bench.traffic import UserPool
from service.aws import aws_client
from service.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_cognito_idp import CognitoIdentityProviderClient

# Meets the pool's password policy (localmode.idp.PASSWORD_POLICY).
PASSWORD = "Bench-learner-1"  # noqa: S105 - a throwaway pool's
# moto's server (the bench's Cognito) answers one request at a time: a few in flight keep it busy.
IN_FLIGHT = 4


def email(n: int) -> str:
    return f"learner-{n}@bench.example.com"


async def _refresh_token(client: CognitoIdentityProviderClient, pool_id: str, client_id: str, address: str) -> str:
    """A new learner's first login: their refresh token."""
    await client.sign_up(
        ClientId=client_id, Username=address, Password=PASSWORD, UserAttributes=[{"Name": "email", "Value": address}]
    )
    await client.admin_confirm_sign_up(UserPoolId=pool_id, Username=address)
    answer = await client.initiate_auth(
        ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH", AuthParameters={"USERNAME": address, "PASSWORD": PASSWORD}
    )
    token = answer.get("AuthenticationResult", {}).get("RefreshToken")
    if token is None:
        raise RuntimeError(f"logging {address} in gave no refresh token: {answer.get('ChallengeName')}")
    return token


async def register(pool: Settings, count: int) -> UserPool:
    """``count`` confirmed learners in ``pool`` (a user pool made by ``localmode.idp.create_user_pool``)."""
    pool_id, client_id = pool.cognito_user_pool_id, pool.auth_client_id
    if pool_id is None or client_id is None:
        raise ValueError("the settings name no user pool and app client")
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(client: CognitoIdentityProviderClient, n: int) -> str:
        async with slots:
            return await _refresh_token(client, pool_id, client_id, email(n))

    async with aws_client(pool, "cognito-idp", pool.cognito_endpoint) as client:
        tokens = await asyncio.gather(*(one(client, n) for n in range(count)))
    return UserPool(pool_id, client_id, list(tokens))
