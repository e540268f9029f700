"""Traces of the running app, exported by OTLP/HTTP to a receiver in the test, over the real Redis and DynamoDB."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pytest_aiohttp import AiohttpClient, AiohttpServer

from service import keys
from service.app import create_app
from service.settings import Settings
from service.telemetry.logs import JsonFormatter
from tests.integration.otlp import Exported, attributes, otlp_receiver
from tests.integration.support import new_id

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SESSION = {"totalModulesStudied": 2, "averageScore": 90, "timeStudied": 1000}


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch) -> Exported:
    return await otlp_receiver(aiohttp_server, monkeypatch)


@pytest.fixture
def request_lines() -> Iterator[io.StringIO]:
    """The request log lines, formatted as the service writes them (while the request's span is current)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("service.request")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_requests_and_their_dependency_calls_are_exported_as_one_trace_each(
    receiver: Exported, request_lines: io.StringIO, aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(settings, access_log=True)))
    user, course = new_id(), new_id()
    headers = {"X-User-Id": user}
    traceparent = {**headers, "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    async with client.post(f"/courses/{course}", json=SESSION, headers=traceparent) as response:
        assert response.status == 201
    for _ in ("a miss, rebuilt from DynamoDB", "a hit"):
        async with client.get(f"/courses/{course}", headers=headers) as response:
            assert response.status == 200
    await client.close()  # the app's cleanup shuts its provider down, which exports every span

    assert receiver.resource["service.name"] == "learning-stats"
    [write] = receiver.named("POST /courses/{courseId}")
    miss, hit = sorted(receiver.named("GET /courses/{courseId}"), key=lambda span: span.start_time_unix_nano)
    for server, status in ((write, 201), (miss, 200), (hit, 200)):
        assert server.kind == Span.SPAN_KIND_SERVER
        assert attributes(server)["http.response.status_code"] == status
        assert attributes(server)["http.route"] == "/courses/{courseId}"
    # The caller's trace goes on; the reads, which came without one, start their own.
    assert write.trace_id.hex() == TRACE_ID
    assert write.parent_span_id.hex() == PARENT_ID
    assert len({write.trace_id, miss.trace_id, hit.trace_id}) == 3
    assert not miss.parent_span_id

    names = {span.name for span in receiver.spans}
    assert not any(user in name or course in name for name in names)

    # Scripts Redis has not loaded yet (this test may come first) go on through redis-py, traced too.
    assert {span.name for span in receiver.children(write)} >= {"DynamoDB.UpdateItem", "EVALSHA"}
    assert {span.name for span in receiver.children(miss)} >= {"DynamoDB.Query", "EVALSHA"}
    # By then the read script is loaded: a hit is one script on the channel.
    [script] = receiver.children(hit)
    assert script.name == "EVALSHA"
    assert script.kind == Span.SPAN_KIND_CLIENT
    redis = urlsplit(str(settings.redis_url))
    assert attributes(script) == {
        "db.system": "redis",
        "db.operation.name": "EVALSHA",
        **(
            {"server.address": redis.path, "network.transport": "unix"}
            if redis.scheme == "unix"
            else {"server.address": redis.hostname, "server.port": redis.port or 6379}
        ),
    }
    for child in receiver.children(write):
        assert child.kind == Span.SPAN_KIND_CLIENT
        assert child.trace_id == write.trace_id
    [update] = [span for span in receiver.children(write) if span.name == "DynamoDB.UpdateItem"]
    assert {
        "db.system": "dynamodb",
        "rpc.system": "aws-api",
        "rpc.method": "UpdateItem",
        "aws.dynamodb.table_names": [settings.dynamodb_table],
        "server.address": "127.0.0.1",
    }.items() <= attributes(update).items()

    lines = [orjson.loads(line) for line in request_lines.getvalue().splitlines()]
    assert [line["status"] for line in lines] == [201, 200, 200]
    assert lines[0]["trace_id"] == TRACE_ID
    assert lines[0]["span_id"] == write.span_id.hex()
    assert lines[0]["xray_trace_id"] == f"1-{TRACE_ID[:8]}-{TRACE_ID[8:]}"
    assert lines[2]["trace_id"] == hit.trace_id.hex()


async def test_an_alb_trace_header_is_continued_and_new_trace_ids_are_x_ray_ids(
    receiver: Exported, aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    user, course = new_id(), new_id()
    xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    for headers in ({"X-User-Id": user, "X-Amzn-Trace-Id": xray}, {"X-User-Id": user}):
        async with client.post(f"/courses/{course}", json=SESSION, headers=headers) as response:
            assert response.status == 201
    async with client.get("/nowhere") as response:
        assert response.status == 404
    await client.close()

    continued, started = sorted(receiver.named("POST /courses/{courseId}"), key=lambda span: span.start_time_unix_nano)
    assert continued.trace_id.hex() == "5759e988bd862e3fe1be46a994272793"
    assert continued.parent_span_id.hex() == "53995c3f42cd8ad8"
    # X-Ray takes a trace id whose first 8 digits are its start in epoch seconds.
    assert abs(int(started.trace_id.hex()[:8], 16) - started.start_time_unix_nano // 10**9) <= 1
    [unmatched] = receiver.named("GET unmatched")
    assert attributes(unmatched)["http.response.status_code"] == 404


async def test_the_aioboto3_clients_and_redis_pys_calls_are_client_spans_of_their_request(
    receiver: Exported, aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    async with client.get("/ready") as response:  # DescribeTable on aioboto3's client, PING on redis-py's
        assert response.status == 200
    await client.close()

    [ready] = receiver.named("GET /ready")
    calls = {span.name: span for span in receiver.children(ready)}
    assert set(calls) == {"DynamoDB.DescribeTable", "PING"}
    for call in calls.values():
        assert call.kind == Span.SPAN_KIND_CLIENT
        assert ready.start_time_unix_nano <= call.start_time_unix_nano <= call.end_time_unix_nano
        assert call.end_time_unix_nano <= ready.end_time_unix_nano
    assert {
        "db.system": "dynamodb",
        "rpc.method": "DescribeTable",
        "aws.dynamodb.table_names": [settings.dynamodb_table],
        "http.response.status_code": 200,
    }.items() <= attributes(calls["DynamoDB.DescribeTable"]).items()
    assert attributes(calls["PING"])["db.system"] == "redis"


async def test_a_request_that_fails_is_an_error_span_with_its_500_and_its_log_line_in_its_trace(
    receiver: Exported,
    request_lines: io.StringIO,
    aiohttp_client: AiohttpClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(settings, access_log=True)))

    async def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(client.app[keys.STATS], "course", broken)
    async with client.get(f"/courses/{new_id()}", headers={"X-User-Id": new_id()}) as response:
        assert response.status == 500
    await client.close()

    [failed] = receiver.named("GET /courses/{courseId}")
    assert failed.status.code == Status.STATUS_CODE_ERROR
    assert attributes(failed)["http.response.status_code"] == 500
    [line] = [orjson.loads(line) for line in request_lines.getvalue().splitlines() if '"status"' in line]
    assert (line["status"], line["trace_id"]) == (500, failed.trace_id.hex())
