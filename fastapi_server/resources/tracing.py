"""OpenTelemetry traces, exported over OTLP when the ``otel`` extra is installed and
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (docs/operations.md, "Traces").

* Requests: FastAPI's own instrumentation (``FastAPI(telemetry=...)``), a server span per
  request with child spans for dependencies, the endpoint and serialization.
* Database: the standard SQLAlchemy instrumentation on the app's engine, a span per
  statement under the request's span.
* Outgoing mail: a client span around each SMTP delivery (``notifications/transports.py``).

Without the variable nothing here imports the SDK; without the extra, a warning says
why there are no traces. The provider becomes the process's global one, so the log
lines' ``trace_id`` (``lib/logging.py``) and the SMTP spans follow it too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from fastapi_server.lib.logging import include_trace_ids

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger(__name__)

SERVICE_NAME = "fastapi-server"
# Probes and scrapes: frequent, and of no interest in a trace.
UNTRACED_PATHS = frozenset({"/_status", "/_ready", "/metrics"})

_configured: list[TracerProvider] = []


def provider_from_environment() -> TracerProvider | None:
    """The process's OTLP-exporting provider (made once), or None when tracing is off."""
    if _configured:
        return _configured[0]
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed "
            "(pip install '.[otel]'): no traces are exported"
        )
        return None
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, win over the default name.
    service = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(service))
    # The exporter reads the endpoint, headers and timeout from the OTEL_EXPORTER_OTLP_* variables.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured.append(provider)
    return provider


def telemetry_config(enabled: bool, provider: TracerProvider | None) -> TelemetryConfig:
    """``FastAPI(telemetry=...)``: its spans go to ``provider`` when there is one; its
    metrics and logs follow the ``TELEMETRY`` setting (``enabled``) as before."""
    config: TelemetryConfig = {
        "tracing": enabled or provider is not None,
        "metrics": enabled,
        "logs": enabled,
        "exclude": _untraced,
    }
    if provider is not None:
        # Ours exports already: FastAPI's own exporter set-up would export every span twice.
        config["tracer_provider"] = provider
        config["auto_configure"] = False
    return config


def _untraced(scope: Any) -> bool:
    return scope.get("path") in UNTRACED_PATHS


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Trace the app's SQL statements while it runs (when it has a provider)."""
    provider: TracerProvider | None = app.state.tracer_provider
    if provider is None:
        yield
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    include_trace_ids()
    instrumentor = SQLAlchemyInstrumentor()
    # The instrumentation declares SQLAlchemy < 2.1 and would refuse 2.1 without trying;
    # test_tracing.py checks that its spans come, with the version the lock pins.
    instrumentor.instrument(
        engine=app.state.database.engine.sync_engine,
        tracer_provider=provider,
        skip_dep_check=True,
    )
    try:
        yield
    finally:
        instrumentor.uninstrument()
