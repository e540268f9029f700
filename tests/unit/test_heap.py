"""A serving process's app freezes its start-up heap, clients included, out of the collector's sight."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestServer

from service.app import freeze_heap_after_startup


async def test_the_heap_alive_after_startup_is_frozen_and_later_objects_are_not() -> None:
    made_by_startup: list[object] = []

    async def client(app: web.Application) -> AsyncIterator[None]:
        made_by_startup.append([object()])  # a cleanup context's client, built before the freeze
        yield

    app = web.Application()
    app.cleanup_ctx.append(client)
    try:
        async with TestServer(freeze_heap_after_startup(app)):
            assert gc.get_freeze_count() > 0
            [built] = made_by_startup
            after = [object()]
            tracked = gc.get_objects()
            assert not any(thing is built for thing in tracked)
            assert any(thing is after for thing in tracked)
    finally:
        gc.unfreeze()  # this test process starts many apps, whose objects must stay collectable
