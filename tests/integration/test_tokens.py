"""Access tokens from the embedded Cognito-compatible IdP (moto's cognito-idp, over HTTP),
verified by the real verifier; every attack answers 401/403 in the envelope and stores nothing."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aioboto3
import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from pytest_aiohttp import AiohttpClient

from localmode import idp as idp_keys
from service.app import create_app
from service.auth.tokens import TokenVerifier
from service.domain.identity import Unauthenticated
from service.settings import Settings
from service.telemetry.logs import hash_user
from tests.integration.support import Api, Backends, Reply, new_id

REGION = "us-east-1"
PASSWORD = "Learner-Passw0rd!"
BODY = {"totalModulesStudied": 3, "averageScore": 80, "timeStudied": 1000}


class Idp:
    def __init__(self, endpoint: str, pool_id: str, client_id: str) -> None:
        self.endpoint = endpoint
        self.pool_id = pool_id
        self.client_id = client_id
        self.issuer = idp_keys.issuer(pool_id)

    def sign(self, **claims: Any) -> str:
        """A token of this IdP's key with the claims of a valid access token, overridden by ``claims``."""
        sub = claims.pop("sub", str(uuid.uuid4()))
        client_id = claims.pop("client_id", self.client_id)
        return idp_keys.access_token(self.pool_id, client_id, sub, lifetime=600, **claims)


def cognito(settings: Settings) -> Any:
    """moto's cognito-idp, served by the same local server as DynamoDB."""
    return aioboto3.Session().client(
        "cognito-idp",
        region_name=REGION,
        endpoint_url=settings.dynamodb_endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


@pytest.fixture
def idp(settings: Settings) -> Idp:
    """The session's user pool, app client and role groups, as local mode creates them."""
    assert settings.cognito_endpoint
    assert settings.cognito_user_pool_id
    assert settings.auth_client_id
    return Idp(settings.cognito_endpoint, settings.cognito_user_pool_id, settings.auth_client_id)


async def log_in(settings: Settings, idp: Idp) -> dict[str, str]:
    """A new learner registered with the IdP and logged in: their access and ID tokens."""
    email = f"{new_id()}@example.com"
    async with cognito(settings) as idp_api:
        pool = idp.pool_id
        await idp_api.admin_create_user(UserPoolId=pool, Username=email, MessageAction="SUPPRESS")
        await idp_api.admin_set_user_password(UserPoolId=pool, Username=email, Password=PASSWORD, Permanent=True)
        auth = await idp_api.initiate_auth(
            ClientId=idp.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
        )
    result: dict[str, str] = auth["AuthenticationResult"]
    return result


@pytest.fixture
async def api(aiohttp_client: AiohttpClient, settings: Settings) -> Api:
    return Api(await aiohttp_client(create_app(dataclasses.replace(settings, trust_user_header=False))))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_refused(reply: Reply, status: int) -> None:
    assert reply.status == status, reply.body
    code = {401: "unauthenticated", 403: "forbidden"}[status]
    assert reply.json["error"]["code"] == code
    if status == 401:
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def sub_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


async def test_a_logged_in_learner_writes_and_reads_their_own_stats(api: Api, settings: Settings, idp: Idp) -> None:
    tokens = await log_in(settings, idp)
    course = new_id()
    created = await api.call("POST", f"/courses/{course}", json=BODY, headers=bearer(tokens["AccessToken"]))
    assert created.status == 201, created.body
    again = await api.call("GET", f"/courses/{course}", headers=bearer(tokens["AccessToken"]))
    assert (again.status, again.json["sessionsCount"]) == (200, 1)
    # The learner is the token's subject, whatever header a client adds, if it agrees.
    same = {**bearer(tokens["AccessToken"]), "X-User-Id": sub_of(tokens["AccessToken"]).upper()}
    assert (await api.call("GET", f"/courses/{course}", headers=same)).status == 200


async def test_a_token_naming_someone_else_in_x_user_id_is_forbidden_and_stores_nothing(
    api: Api, settings: Settings, idp: Idp, backends: Backends
) -> None:
    tokens = await log_in(settings, idp)
    victim = new_id()
    headers = {**bearer(tokens["AccessToken"]), "X-User-Id": victim}
    assert_refused(await api.call("POST", f"/courses/{new_id()}", json=BODY, headers=headers), 403)
    await backends.assert_nothing_stored(victim)
    await backends.assert_nothing_stored(sub_of(tokens["AccessToken"]))


async def test_without_header_trust_a_request_needs_a_token(api: Api, backends: Backends) -> None:
    user = new_id()
    assert_refused(await api.post(user, new_id(), BODY), 401)
    await backends.assert_nothing_stored(user)


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Bearer not.a.jwt", "Bearer a"])
async def test_a_malformed_authorization_header_is_refused(api: Api, authorization: str) -> None:
    assert_refused(await api.call("GET", f"/courses/{new_id()}", headers={"Authorization": authorization}), 401)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_by_hand(claims: dict[str, Any], secret: bytes) -> str:
    """The classic key-confusion forgery, which PyJWT itself refuses to produce."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "dummy"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def forged(idp: Idp) -> dict[str, str]:
    """Tokens that must all be refused with 401, by what is wrong with them."""
    now = int(time.time())
    public = jwt.PyJWK(idp_keys.PUBLIC_JWKS["keys"][0], algorithm="RS256").key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = jwt.decode(idp.sign(), options={"verify_signature": False})
    return {
        "expired": idp.sign(exp=now - 60),
        "not yet valid": idp.sign(nbf=now + 120),
        "alg none": jwt.encode(claims, None, "none"),  # type: ignore[arg-type]
        "HS256 keyed with the public key": hs256_by_hand(claims, pem),
        "another pool": idp.sign(iss=f"https://cognito-idp.{REGION}.amazonaws.com/{REGION}_Other"),
        "another client": idp.sign(client_id="another-app-client"),
        "an ID token": idp.sign(token_use="id", client_id=None, aud=idp.client_id),
        "a subject that is not a user id": idp.sign(sub="admin"),
        "an unknown key": jwt.encode(claims, idp_keys.SIGNING_KEY.key, "RS256", {"kid": "rotated-away"}),
        "no expiry": idp.sign(exp=None),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "not yet valid",
        "alg none",
        "HS256 keyed with the public key",
        "another pool",
        "another client",
        "an ID token",
        "a subject that is not a user id",
        "an unknown key",
        "no expiry",
    ],
)
async def test_a_forged_or_wrong_token_is_refused_and_stores_nothing(
    api: Api, idp: Idp, kind: str, backends: Backends
) -> None:
    token = forged(idp)[kind]
    course = new_id()
    assert_refused(await api.call("POST", f"/courses/{course}", json=BODY, headers=bearer(token)), 401)
    assert_refused(await api.call("GET", f"/courses/{course}", headers=bearer(token)), 401)
    subject = jwt.decode(token, options={"verify_signature": False}).get("sub")
    if isinstance(subject, str) and len(subject) == 36:
        await backends.assert_nothing_stored(subject)


async def test_the_leeway_admits_a_token_just_past_its_expiry(api: Api, idp: Idp) -> None:
    token = idp.sign(exp=int(time.time()) - 10)
    assert (await api.call("GET", f"/courses/{new_id()}", headers=bearer(token))).status == 404  # known, no data


async def test_the_idps_own_id_token_is_not_an_access_token(api: Api, settings: Settings, idp: Idp) -> None:
    tokens = await log_in(settings, idp)
    assert_refused(await api.call("GET", f"/courses/{new_id()}", headers=bearer(tokens["IdToken"])), 401)


async def test_a_learner_cannot_read_another_learners_session_by_id(api: Api, idp: Idp) -> None:
    alice, bob = idp.sign(), idp.sign()
    course = new_id()
    created = await api.call("POST", f"/courses/{course}", json=BODY, headers=bearer(alice))
    session = created.json["sessionId"]
    assert (await api.call("GET", f"/courses/{course}/sessions/{session}", headers=bearer(alice))).status == 200
    assert (await api.call("GET", f"/courses/{course}/sessions/{session}", headers=bearer(bob))).status == 404
    assert (await api.call("GET", f"/courses/{course}", headers=bearer(bob))).status == 404


async def test_unknown_keys_refetch_the_jwks_at_most_once_a_minute(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> None:
    fetches = 0
    now = [1000.0]

    async def jwks(request: web.Request) -> web.Response:
        nonlocal fetches
        fetches += 1
        return web.json_response(idp_keys.PUBLIC_JWKS)

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    server = await aiohttp_server(app)
    idp = Idp("", f"{REGION}_Pool", "client")
    async with aiohttp.ClientSession() as http:
        verifier = TokenVerifier(
            http,
            jwks_url=str(server.make_url("/jwks")),
            issuer=idp.issuer,
            client_id="client",
            monotonic=lambda: now[0],
        )
        await verifier.refresh_keys()
        claims = jwt.decode(idp.sign(), options={"verify_signature": False})
        unknown = jwt.encode(claims, idp_keys.SIGNING_KEY.key, "RS256", {"kid": "rotated-in"})
        for _ in range(5):  # a flood of tokens naming an unknown key
            with pytest.raises(Unauthenticated):
                await verifier.verify(unknown)
        assert fetches == 1
        now[0] += 61
        with pytest.raises(Unauthenticated):
            await verifier.verify(unknown)
        assert fetches == 2
        assert (await verifier.verify(idp.sign(client_id="client"))).roles == frozenset()
        assert fetches == 2  # a known key needs no fetch


async def test_the_access_log_names_the_tokens_learner_hashed(
    aiohttp_client: AiohttpClient, settings: Settings, idp: Idp, caplog: pytest.LogCaptureFixture
) -> None:
    api = Api(await aiohttp_client(create_app(dataclasses.replace(settings, access_log=True))))
    learner = new_id()
    with caplog.at_level(logging.INFO, logger="service.request"):
        reply = await api.call("GET", f"/courses/{new_id()}", headers=bearer(idp.sign(sub=learner)))
    assert reply.status == 404
    # The contract checker's fetch of the OpenAPI document logs a line of its own.
    [entry] = [r for r in caplog.records if r.getMessage() == "request" and r.route == "/courses/{courseId}"]  # type: ignore[attr-defined]
    assert entry.user == hash_user(learner)  # type: ignore[attr-defined]
