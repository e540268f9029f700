"""Traces' switch (the OTLP endpoint variables), and the trace ids in log lines."""

from __future__ import annotations

import logging

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from service import keys
from service.app import create_app
from service.http.middleware import request_envelope
from service.settings import Settings
from service.telemetry import tracing
from service.telemetry.logs import JsonFormatter

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@pytest.fixture(autouse=True)
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENDPOINTS:
        monkeypatch.delenv(name, raising=False)


def test_without_an_endpoint_the_app_has_no_tracing_at_all() -> None:
    app = create_app(Settings())
    assert list(app.middlewares) == [request_envelope]
    assert app[keys.TRACING] is tracing.OFF
    assert not any(isinstance(getattr(ctx, "__self__", None), tracing.Tracing) for ctx in app.cleanup_ctx)
    # Nothing was set for the process either.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@pytest.mark.parametrize("variable", ENDPOINTS)
def test_an_endpoint_puts_the_server_span_first_and_the_provider_first(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:4318")
    app = create_app(Settings())
    traced = app[keys.TRACING]
    assert traced is not tracing.OFF
    assert len(app.middlewares) == 2
    assert app.middlewares[1] is request_envelope
    assert app.cleanup_ctx[0] == traced.ctx
    # The app's provider is its own, never the process's.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _line(record: logging.LogRecord) -> dict[str, str]:
    parsed: dict[str, str] = orjson.loads(JsonFormatter().format(record))
    return parsed


def test_a_log_line_carries_the_recording_spans_ids_in_both_forms() -> None:
    record = logging.makeLogRecord({"msg": "request", "levelname": "INFO"})
    assert "trace_id" not in _line(record)
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("request") as span:
        context = span.get_span_context()
        line = _line(record)
    trace_id = f"{context.trace_id:032x}"
    assert line["trace_id"] == trace_id
    assert line["span_id"] == f"{context.span_id:016x}"
    assert line["xray_trace_id"] == f"1-{trace_id[:8]}-{trace_id[8:]}"
    assert len(line["xray_trace_id"]) == 35
    assert "trace_id" not in _line(record)
    provider.shutdown()


def test_a_span_not_sampled_adds_nothing() -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    with provider.get_tracer("test").start_as_current_span("request"):
        line = _line(logging.makeLogRecord({"msg": "request"}))
    assert not {"trace_id", "span_id", "xray_trace_id"} & set(line)
    provider.shutdown()
