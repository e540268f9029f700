"""The framework ceiling: a bare aiohttp JSON handler, served by the same gunicorn
config (uvloop worker, one worker) as the service.

It answers the cached course read's route with a body of the same shape and
size, and does no I/O, validation, middleware or metrics.
"""

from __future__ import annotations

import orjson
from aiohttp import web

_BODY = orjson.dumps({"totalModulesStudied": 1234, "averageScore": 87.5, "timeStudied": 1800000, "sessionsCount": 3})


async def course(request: web.Request) -> web.Response:
    return web.Response(body=_BODY, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def app_factory() -> web.Application:
    app = web.Application()
    app.router.add_get("/courses/{courseId}", course, allow_head=False)
    app.router.add_get("/health", health, allow_head=False)
    return app
