"""An AWS endpoint that throttles on demand, in front of a real one.

Requests it lets through are forwarded unchanged to the upstream endpoint; the
others get the service's own throttling answer (HTTP 400; DynamoDB's
``ProvisionedThroughputExceededException`` unless told another), which
botocore retries.
"""

from __future__ import annotations

import enum
import re
from typing import Self

import aiohttp
from aiohttp import web

THROTTLED_BODY = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
    b'"message":"The level of configured provisioned throughput for the table was exceeded."}'
)
COGNITO_THROTTLED_BODY = b'{"__type":"TooManyRequestsException","message":"Rate exceeded"}'
# Hop-by-hop or recomputed headers that must not be copied between the two legs.
_SKIPPED = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# botocore numbers every attempt of one operation: "attempt=2; max=3".
_ATTEMPT = re.compile(r"attempt=(\d+)")


class Throttle(enum.Enum):
    OFF = "off"
    FIRST_ATTEMPT = "first_attempt"  # every operation succeeds on its first retry
    ALWAYS = "always"


class ThrottlingEndpoint:
    def __init__(self, upstream_url: str, throttled_body: bytes = THROTTLED_BODY) -> None:
        self.upstream_url = upstream_url
        self.throttled_body = throttled_body
        self.throttle = Throttle.OFF
        self.throttled = 0
        self.forwarded = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        assert self._runner is not None, "endpoint not started"
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def start(self) -> Self:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _throttles(self, request: web.Request) -> bool:
        if self.throttle is Throttle.ALWAYS:
            return True
        if self.throttle is Throttle.OFF:
            return False
        match = _ATTEMPT.search(request.headers.get("amz-sdk-request", ""))
        return match is None or match.group(1) == "1"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self._throttles(request):
            self.throttled += 1
            return web.Response(status=400, body=self.throttled_body, content_type="application/x-amz-json-1.0")
        assert self._session is not None
        self.forwarded += 1
        headers = {name: value for name, value in request.headers.items() if name.lower() not in _SKIPPED}
        async with self._session.request(
            request.method, self.upstream_url + request.path_qs, headers=headers, data=body
        ) as upstream:
            payload = await upstream.read()
            copied = {name: value for name, value in upstream.headers.items() if name.lower() not in _SKIPPED}
            return web.Response(status=upstream.status, body=payload, headers=copied)
