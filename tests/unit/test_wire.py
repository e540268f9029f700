"""DynamoWire against a scripted HTTP endpoint: what it sends, how it signs, retries and fails.

The endpoint is a real aiohttp server on loopback, so every request crosses HTTP as it does to
DynamoDB; moto's server answers the same calls in the integration and fault tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import botocore.auth
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import (
    ChecksumError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.retries.standard import ExponentialBackoff

from localmode.servers import free_port
from service.aws import aws_client
from service.dynamodb.wire import DynamoWire, Signer
from service.settings import Settings

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]
THROTTLED = {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "message": "slow"}
NOW = datetime.datetime(2026, 12, 2, 21, 30, 5, tzinfo=datetime.UTC)


def json_answer(body: dict[str, Any], status: int = 200, *, crc: int | None = None) -> web.Response:
    payload = orjson.dumps(body)
    checksum = zlib.crc32(payload) if crc is None else crc
    return web.Response(
        status=status, body=payload, content_type="application/x-amz-json-1.0", headers={"x-amz-crc32": str(checksum)}
    )


@dataclasses.dataclass
class Endpoint:
    """Answers each request with the next of ``answers`` (the last one repeats), recording what came."""

    answers: list[Answer]
    requests: list[tuple[dict[str, str], bytes]] = dataclasses.field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.read()))
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return await answer(request)


def always(response: Callable[[], web.StreamResponse]) -> Answer:
    async def answer(_: web.Request) -> web.StreamResponse:
        return response()

    return answer


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, str]]:
    scripted = Endpoint([])
    app = web.Application()
    app.router.add_post("/", scripted.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield scripted, str(server.make_url("")).rstrip("/")


def settings_for(url: str, **changes: Any) -> Settings:
    base = Settings(env="test", dynamodb_endpoint=url, dynamodb_timeout_seconds=0.5, dynamodb_max_attempts=3)
    return dataclasses.replace(base, **changes)


@dataclasses.dataclass
class Opened:
    wire: DynamoWire
    attempts: list[int]


@pytest.fixture
def wire_at() -> Callable[..., Any]:
    """A wire at a URL, opened as the service opens it, and the attempts it made; retries without backoff."""

    @contextlib.asynccontextmanager
    async def opened(url: str, **changes: Any) -> AsyncIterator[Opened]:
        settings = settings_for(url, **changes)
        async with aws_client(settings, "dynamodb", url) as client, DynamoWire.open(settings, client) as wire:
            wire._backoff = ExponentialBackoff(random=lambda: 0.0)
            attempts: list[int] = []
            wire.observe_attempts(attempts.append)
            yield Opened(wire, attempts)

    return opened


def test_the_signature_is_botocores(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b'{"TableName":"t","Key":{"pk":{"S":"u"}}}'
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    for token in (None, "session-token"):
        signer = Signer("eu-west-1", "dynamodb.eu-west-1.amazonaws.com")
        ours = signer.headers(
            "DynamoDB_20120810.GetItem", body, ReadOnlyCredentials("AKIDEXAMPLE", "secret", token), NOW
        )
        request = AWSRequest(
            method="POST",
            url="https://dynamodb.eu-west-1.amazonaws.com/",
            data=body,
            headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"},
        )
        botocore.auth.SigV4Auth(Credentials("AKIDEXAMPLE", "secret", token), "dynamodb", "eu-west-1").add_auth(request)
        assert ours["Authorization"] == request.headers["Authorization"]
        assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]
        assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")


def test_a_new_day_signs_with_a_new_key() -> None:
    signer = Signer("us-east-1", "localhost:8000")
    credentials = ReadOnlyCredentials("AKID", "secret", None)
    today = signer.headers("T", b"{}", credentials, NOW)["Authorization"]
    tomorrow = signer.headers("T", b"{}", credentials, NOW + datetime.timedelta(days=1))["Authorization"]
    assert "20261202/" in today
    assert "20261203/" in tomorrow
    again = signer.headers("T", b"{}", credentials, NOW)["Authorization"]
    assert again == today


async def test_a_call_sends_the_json_protocol_and_answers_as_botocore(
    endpoint: tuple[Endpoint, str], wire_at: Callable[..., Any]
) -> None:
    scripted, url = endpoint
    stored = {"pk": {"S": "u"}, "r": {"B": base64.b64encode(b"\x00\x01").decode()}, "m": {"M": {"x": {"B": "AA=="}}}}
    scripted.answers = [always(lambda: json_answer({"Attributes": stored}))]
    async with wire_at(url) as opened:
        answer = await opened.wire.update_item(TableName="t", Key={"pk": {"S": "u"}}, Values={":r": {"B": b"\xff"}})
    # Binary values stay base64 text, which the item codec reads.
    assert answer == {"Attributes": stored}
    [(headers, body)] = scripted.requests
    assert headers["X-Amz-Target"] == "DynamoDB_20120810.UpdateItem"
    assert headers["Content-Type"] == "application/x-amz-json-1.0"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=local/")
    assert headers["amz-sdk-request"] == "attempt=1; max=3"
    assert orjson.loads(body) == {"TableName": "t", "Key": {"pk": {"S": "u"}}, "Values": {":r": {"B": "/w=="}}}
    assert opened.attempts == [1]


async def test_a_refused_condition_is_a_client_error_with_the_stored_item(
    endpoint: tuple[Endpoint, str], wire_at: Callable[..., Any]
) -> None:
    scripted, url = endpoint
    refused = {
        "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        "message": "The conditional request failed",
        "Item": {"v": {"N": "3"}, "r": {"B": "AQ=="}},
    }
    scripted.answers = [always(lambda: json_answer(refused, 400))]
    async with wire_at(url) as opened:
        with pytest.raises(ClientError) as raised:
            await opened.wire.update_item(TableName="t")
    assert raised.value.response["Error"] == {
        "Code": "ConditionalCheckFailedException",
        "Message": "The conditional request failed",
    }
    assert raised.value.response["Item"] == {"v": {"N": "3"}, "r": {"B": "AQ=="}}
    assert raised.value.operation_name == "UpdateItem"
    assert opened.attempts == [1]  # not retryable


async def test_throttling_is_retried_as_botocore_retries_it(
    endpoint: tuple[Endpoint, str], wire_at: Callable[..., Any]
) -> None:
    scripted, url = endpoint
    scripted.answers = [always(lambda: json_answer(THROTTLED, 400)), always(lambda: json_answer({"Items": []}))]
    async with wire_at(url) as opened:
        assert await opened.wire.query(TableName="t") == {"Items": []}
        assert opened.attempts == [1, 2]
        assert [headers["amz-sdk-request"] for headers, _ in scripted.requests] == [
            "attempt=1; max=3",
            "attempt=2; max=3",
        ]
        # One call's attempts share their invocation id.
        assert len({headers["amz-sdk-invocation-id"] for headers, _ in scripted.requests}) == 1

        scripted.requests.clear()
        scripted.answers = [always(lambda: json_answer(THROTTLED, 400))]
        with pytest.raises(ClientError) as raised:
            await opened.wire.get_item(TableName="t")
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert len(scripted.requests) == 3  # every attempt of STATS_DYNAMODB_MAX_ATTEMPTS


async def test_server_errors_and_bad_checksums_are_retried(
    endpoint: tuple[Endpoint, str], wire_at: Callable[..., Any]
) -> None:
    scripted, url = endpoint
    scripted.answers = [
        always(lambda: json_answer({"__type": "InternalServerError", "message": "oops"}, 500)),
        always(lambda: json_answer({"Item": {"a": {"S": "x"}}}, crc=1)),
        always(lambda: json_answer({"Item": {"a": {"S": "x"}}})),
    ]
    async with wire_at(url) as opened:
        assert await opened.wire.get_item(TableName="t") == {"Item": {"a": {"S": "x"}}}
        assert opened.attempts == [1, 2, 3]

        scripted.requests.clear()
        scripted.answers = [always(lambda: json_answer({}, crc=7))]
        with pytest.raises(ChecksumError):
            await opened.wire.get_item(TableName="t")
    assert len(scripted.requests) == 3


async def test_one_attempt_means_no_retry(endpoint: tuple[Endpoint, str], wire_at: Callable[..., Any]) -> None:
    scripted, url = endpoint
    scripted.answers = [always(lambda: json_answer(THROTTLED, 400))]
    async with wire_at(url, dynamodb_max_attempts=1) as opened:
        with pytest.raises(ClientError):
            await opened.wire.get_item(TableName="t")
    assert len(scripted.requests) == 1


async def test_a_slow_answer_is_a_read_timeout(endpoint: tuple[Endpoint, str], wire_at: Callable[..., Any]) -> None:
    scripted, url = endpoint

    async def slow(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return json_answer({})

    scripted.answers = [slow]
    async with wire_at(url, dynamodb_timeout_seconds=0.1, dynamodb_max_attempts=2) as opened:
        with pytest.raises(ReadTimeoutError):
            await opened.wire.get_item(TableName="t")
    assert len(scripted.requests) == 2


async def test_a_dropped_connection_is_connection_closed(
    endpoint: tuple[Endpoint, str], wire_at: Callable[..., Any]
) -> None:
    scripted, url = endpoint

    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return json_answer({})

    scripted.answers = [drop]
    async with wire_at(url, dynamodb_max_attempts=2) as opened:
        with pytest.raises(ConnectionClosedError):
            await opened.wire.get_item(TableName="t")
    assert len(scripted.requests) == 2


async def test_nothing_listening_is_an_endpoint_connection_error(wire_at: Callable[..., Any]) -> None:
    async with wire_at(f"http://127.0.0.1:{free_port()}") as opened:
        with pytest.raises(EndpointConnectionError):
            await opened.wire.get_item(TableName="t")
        assert opened.attempts == [1, 2, 3]


async def test_no_credentials_fail_the_call(endpoint: tuple[Endpoint, str], monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = endpoint

    async def none(*_: object) -> None:
        return None

    monkeypatch.setattr("service.dynamodb.wire.client_credentials", none)
    settings = settings_for(url)
    async with aws_client(settings, "dynamodb", url) as client, DynamoWire.open(settings, client) as wire:
        with pytest.raises(NoCredentialsError):
            await wire.get_item(TableName="t")
