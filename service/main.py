"""Gunicorn entry point: ``gunicorn --config python:service.gunicorn_conf service.main:app_factory``."""

from __future__ import annotations

from aiohttp import web

from service.app import create_app, freeze_heap_after_startup
from service.settings import load_settings
from service.telemetry.logs import configure_logging


async def app_factory() -> web.Application:
    settings = load_settings()
    configure_logging(settings.log_level)
    return freeze_heap_after_startup(create_app(settings))
