"""DynamoDB's JSON protocol on the service's own connections, for the calls on every request's path.

``UpdateItem``, ``GetItem`` and ``Query`` (every POST, session read, session list
and rebuild) go through :class:`DynamoWire`; every other call (tables, batches,
transactions, streams) stays on the aioboto3 client.

Why not aioboto3 for these: botocore's per-call pipeline (request creation,
parameter validation and serialisation, the User-Agent rebuilt for each call,
signing through ``AWSRequest``, response parsing) was most of a POST's server
CPU. ``scripts/bench`` makes the same store calls through both clients in one run
(``bench/clients.py``): aioboto3 spent 12 times the wire's CPU on an
``UpdateItem``, 15 times on a ``GetItem`` and 6.6 times per session of a
rebuild's ``Query`` (``bench/results``). botocore's own signer alone cost
110 µs a call, so the request is signed here (AWS Signature Version 4, checked
against botocore's signer in ``tests/unit/test_wire.py``), with the day's
signing key kept, and sent on kept-alive connections of its own
(``service.dynamodb.http``, where the cost of aiohttp's client is measured).

What it keeps of the aioboto3 client it is opened from:

- **credentials**: the client's session's chain (environment, ECS task role,
  ...), refreshed by botocore's credentials object before they expire;
- **endpoint**: the one the client resolved (TLS, verified, for ``https``);
  like aiohttp's client, and unlike botocore, it ignores ``HTTPS_PROXY``;
- **retries**: botocore's standard mode itself (its retry conditions, jittered
  exponential backoff and retry quota), over the same number of attempts, each
  retry counted in the same metric;
- **timeouts**: the same connect and read timeouts;
- **errors**: botocore's exceptions, ``ClientError`` with the same ``response``
  (the error's code and message, and modelled members such as the ``Item`` of
  a failed condition) and ``BotoCoreError`` subclasses for connection failures,
  timeouts and bad checksums, so every caller's error handling is the same.

One difference: answers are DynamoDB's JSON as it arrives, so a binary value is
its base64 text, where botocore decodes it to bytes. The item codec reads both
(a stream record delivered to Lambda carries base64 text too); walking every
attribute of every item to decode it was a quarter of a Query's CPU.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import functools
import hashlib
import hmac
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from botocore.awsrequest import AWSResponse
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.retries.quota import RetryQuota
from botocore.retries.standard import (
    ExponentialBackoff,
    RetryContext,
    RetryQuotaChecker,
    StandardRetryConditions,
)

from service.aws import client_credentials
from service.dynamodb.http import Answer, ConnectFailed, ConnectTimedOut, HttpPool, ReadTimedOut, TransportError
from service.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

    from service.telemetry.tracing import DynamoSpans

_TARGET = "DynamoDB_20120810."
_CONTENT_TYPE = "application/x-amz-json-1.0"
_SIGNED_HEADERS = "content-type;host;x-amz-date;x-amz-target"
_SIGNED_WITH_SESSION = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
_USER_AGENT = "learning-stats"
_CONNECTIONS = 64
# botocore's connector keeps idle connections this long.
_KEEPALIVE_SECONDS = 12.0


class _Body:
    """An answer's body, as botocore's response object reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self) -> list[bytes]:
        return [self._body]


# What the retry quota is told of a call that succeeded (it reads the status alone).
_SUCCEEDED = AWSResponse("", 200, {}, _Body(b""))


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


# One key a day (and credentials): older ones are never asked for again.
@functools.lru_cache(maxsize=1)
def _signing_key(secret: str, day: str, region: str) -> bytes:
    return _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), region), "dynamodb"), "aws4_request")


class Signer:
    """AWS Signature Version 4 of DynamoDB's JSON requests, for one region."""

    def __init__(self, region: str, host: str) -> None:
        self._region = region
        self._host = host

    def headers(
        self, target: str, body: bytes, credentials: ReadOnlyCredentials, now: datetime.datetime
    ) -> dict[str, str]:
        """The headers of a request of ``target`` with ``body``, signed with ``credentials`` at ``now`` (UTC)."""
        access_key, secret, token = credentials.access_key, credentials.secret_key, credentials.token
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        scope = f"{day}/{self._region}/dynamodb/aws4_request"
        # Names in order, as the canonical request lists them.
        canonical = f"content-type:{_CONTENT_TYPE}\nhost:{self._host}\nx-amz-date:{stamp}\n"
        signed = _SIGNED_HEADERS
        if token is not None:
            canonical += f"x-amz-security-token:{token}\n"
            signed = _SIGNED_WITH_SESSION
        canonical += f"x-amz-target:{target}\n"
        request = f"POST\n/\n\n{canonical}\n{signed}\n{hashlib.sha256(body).hexdigest()}"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"
        signature = hmac.new(_signing_key(secret, day, self._region), to_sign.encode(), hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": _CONTENT_TYPE,
            "Host": self._host,
            "X-Amz-Date": stamp,
            "X-Amz-Target": target,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, "
            f"Signature={signature}",
        }
        if token is not None:
            headers["X-Amz-Security-Token"] = token
        return headers


def _base64(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not an attribute value")


def _client_error(operation: str, answer: Answer) -> ClientError:
    """DynamoDB's error answer as botocore raises it (the code after the ``#`` of ``__type``)."""
    status, headers, body = answer.status, answer.headers, answer.body
    try:
        parsed = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    code = str(parsed.pop("__type", "") or headers.get("x-amzn-errortype", "") or status).rpartition("#")[2]
    message = parsed.pop("message", None) or parsed.pop("Message", "")
    response = {
        **parsed,
        "Error": {"Code": code.partition(":")[0], "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": headers.get("x-amzn-requestid", "")},
    }
    return ClientError(response, operation)


def _connection_error(exc: TransportError, url: str) -> BotoCoreError:
    """A failure with no answer as the botocore exception the same failure raises through aiobotocore."""
    if isinstance(exc, ConnectTimedOut):
        return ConnectTimeoutError(endpoint_url=url)
    if isinstance(exc, ReadTimedOut):
        return ReadTimeoutError(endpoint_url=url)
    if isinstance(exc, ConnectFailed):
        return EndpointConnectionError(endpoint_url=url)
    return ConnectionClosedError(endpoint_url=url)


class DynamoWire:
    """``update_item``, ``get_item`` and ``query`` with aioboto3's arguments and answers, on its own connections."""

    def __init__(self, http: HttpPool, client: DynamoDBClient, credentials: Any, max_attempts: int) -> None:
        self._http = http
        self._url = client.meta.endpoint_url
        self._model = client.meta.service_model
        self._signer = Signer(client.meta.region_name, urlsplit(self._url).netloc)
        self._credentials = credentials
        self._max_attempts = max_attempts
        self._conditions = StandardRetryConditions(max_attempts=max_attempts)
        self._backoff = ExponentialBackoff()
        self._quota = RetryQuotaChecker(RetryQuota())
        self._observers: list[Callable[[int], None]] = []
        self.spans: DynamoSpans | None = None  # set by service.telemetry.tracing when traces are on

    def observe_attempts(self, observer: Callable[[int], None]) -> None:
        """Call ``observer`` with the attempt's number (from 1) before every attempt is sent."""
        self._observers.append(observer)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings, client: DynamoDBClient) -> AsyncIterator[DynamoWire]:
        """A wire beside ``client``: its endpoint, credentials, timeouts and attempts."""
        timeout = settings.dynamodb_timeout_seconds
        credentials = await client_credentials(settings, settings.dynamodb_endpoint)
        http = HttpPool(
            client.meta.endpoint_url,
            limit=_CONNECTIONS,
            keepalive=_KEEPALIVE_SECONDS,
            connect_timeout=timeout,
            read_timeout=timeout,
        )
        try:
            yield cls(http, client, credentials, settings.dynamodb_max_attempts)
        finally:
            await http.aclose()

    async def update_item(self, **request: Any) -> dict[str, Any]:
        return await self._call("UpdateItem", request)

    async def get_item(self, **request: Any) -> dict[str, Any]:
        return await self._call("GetItem", request)

    async def query(self, **request: Any) -> dict[str, Any]:
        return await self._call("Query", request)

    async def _headers(self, target: str, body: bytes) -> dict[str, str]:
        if self._credentials is None:
            raise NoCredentialsError
        frozen = await self._credentials.get_frozen_credentials()
        headers = self._signer.headers(target, body, frozen, datetime.datetime.now(datetime.UTC))
        headers["User-Agent"] = _USER_AGENT
        headers["Accept-Encoding"] = "identity"  # the checksum is of the body as sent
        return headers

    def _call(self, operation: str, request: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        attempts = self._attempts(operation, request)
        return attempts if self.spans is None else self.spans.call(operation, request, attempts)

    async def _attempts(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        body = orjson.dumps(request, default=_base64)
        target = _TARGET + operation
        attempt, invocation = 1, str(uuid.uuid4())
        quota_taken: dict[str, int] = {}  # what the last retry took from the retry quota
        while True:
            headers = await self._headers(target, body)
            # As botocore numbers a call's attempts (unsigned: they change between attempts).
            headers["amz-sdk-invocation-id"] = invocation
            headers["amz-sdk-request"] = f"attempt={attempt}; max={self._max_attempts}"
            for observer in self._observers:
                observer(attempt)
            answer: AWSResponse | None = None
            error: Exception
            try:
                answered = await self._http.post(headers, body)
            except TransportError as exc:
                error = _connection_error(exc, self._url)
                error.__cause__ = exc
            else:
                checksum = answered.headers.get("x-amz-crc32")
                actual = zlib.crc32(answered.body) if checksum is not None else None
                if answered.status == 200 and (checksum is None or int(checksum) == actual):
                    self._quota.release_retry_quota(quota_taken, _SUCCEEDED)
                    return orjson.loads(answered.body)  # type: ignore[no-any-return]
                answer = AWSResponse(self._url, answered.status, dict(answered.headers), _Body(answered.body))
                if answered.status == 200:
                    error = ChecksumError(checksum_type="crc32", expected_checksum=checksum, actual_checksum=actual)
                else:
                    error = _client_error(operation, answered)
            context = RetryContext(
                attempt,
                operation_model=self._model.operation_model(operation),
                parsed_response=error.response if isinstance(error, ClientError) else None,
                http_response=answer,
                caught_exception=None if isinstance(error, ClientError) else error,
                request_context=quota_taken,
            )
            if not self._conditions.is_retryable(context) or not self._quota.acquire_retry_quota(context):
                raise error
            await asyncio.sleep(self._backoff.delay_amount(context))
            attempt += 1
