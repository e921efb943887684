"""Traces (the otel extra): one request is a server span with its database spans below it."""

from __future__ import annotations

import logging

import httpx
import pytest

from fastapi_server.config import Settings
from fastapi_server.main import create_app

pytest.importorskip("opentelemetry.sdk", reason="the otel extra (in the dev requirements)")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    found = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        found.append(span)
    return found


async def test_a_request_is_a_server_span_with_child_database_spans(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(settings, tracer_provider=provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            exporter.clear()  # start-up's own statements are not the request's
            with caplog.at_level(logging.WARNING):
                # An unknown email: the user lookup (SQLAlchemy) and a failed login, logged.
                login = await http.post(
                    "/login", data={"username": "nobody@example.com", "password": "x" * 12}
                )
            flag = await http.get("/feature-flags/no-such-flag")  # a plain read (asyncpg)
    assert (login.status_code, flag.status_code) == (400, 404)
    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    servers = [span for span in spans if span.kind == SpanKind.SERVER]
    assert len(servers) == 2
    for server in servers:
        below = [
            span
            for span in spans
            if span.attributes
            and span.attributes.get("db.system") == "postgresql"
            and server in _ancestors(span, by_id)
        ]
        assert below, f"no database span under {server.name}"
        assert all(span.context.trace_id == server.context.trace_id for span in below)
    login_trace = next(s for s in servers if "login" in s.name).context.trace_id
    failed = next(r for r in caplog.records if r.getMessage() == "login failed")
    assert getattr(failed, "trace_id", None) == format(login_trace, "032x")


async def test_without_a_provider_the_app_has_no_tracing(settings: Settings) -> None:
    app = create_app(settings)
    assert app.state.tracer_provider is None
