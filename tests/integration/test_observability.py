"""A genuine bug is a bare 500; every request leaves one JSON log line without secrets."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import orjson
import pytest
from pytest_aiohttp import AiohttpClient

from service import keys
from service.app import create_app
from service.settings import Settings
from service.telemetry.logs import JsonFormatter, hash_user
from tests.integration.support import Api, new_id
from tests.integration.test_api import assert_error


async def test_an_unhandled_error_is_a_bare_500_and_is_logged(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = await aiohttp_client(create_app(settings))

    async def broken(*args: Any) -> None:
        raise RuntimeError("secret internals: table=learning-stats-test")

    monkeypatch.setattr(client.app[keys.STATS], "course", broken)
    with caplog.at_level(logging.ERROR, logger="service.request"):
        # A genuine bug's 500 is in no operation's responses; its body must still be the envelope.
        reply = await Api(client).call(
            "GET", f"/courses/{new_id()}", user=new_id(), headers={"X-Request-Id": "r-1"}, undocumented=(500,)
        )
    assert_error(reply, 500, "internal_error")
    assert b"secret" not in reply.body
    assert b"Traceback" not in reply.body
    [record] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert record.__dict__["request_id"] == "r-1"
    assert "secret internals" in caplog.text


async def test_each_request_logs_one_json_line_with_the_user_hashed(
    aiohttp_client: AiohttpClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(settings, access_log=True)))
    user, course = new_id(), new_id()
    body = {"totalModulesStudied": 7, "averageScore": 12.34, "timeStudied": 4321}
    api = Api(client)
    # Fetched now, the OpenAPI document the replies are checked against leaves no log line below.
    await api.contract()
    with caplog.at_level(logging.INFO, logger="service.request"):
        reply = await api.call("POST", f"/courses/{course}", user=user.upper(), json=body)
    assert reply.status == 201
    [record] = [record for record in caplog.records if record.name == "service.request"]
    line = JsonFormatter().format(record)
    entry = orjson.loads(line)
    assert "\n" not in line
    assert entry["message"] == "request"
    assert entry["method"] == "POST"
    assert entry["route"] == "/courses/{courseId}"
    assert entry["status"] == 201
    assert entry["duration_ms"] > 0
    assert entry["request_id"] == reply.headers["X-Request-Id"]
    assert entry["user"] == hash_user(user)
    for secret in (user, user.upper(), "12.34", "4321"):
        assert secret not in line
