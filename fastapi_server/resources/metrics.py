"""Prometheus metrics: ``GET /metrics`` when ``METRICS_ENABLED`` is on (docs/operations.md).

Three kinds of numbers, gathered three ways:

* Requests (count by route template, method and status; latency): counted as they
  happen by ``record``, which the request middleware (``main.RequestMiddleware``) calls.
* This process's state (pool connections in use and waiting, the flag cache and both
  listeners): sampled every ``SAMPLE_SECONDS`` by ``lifespan``'s task, so no request
  pays for them. The same task writes the request counts, kept in a plain dict between
  times (in multiprocess mode every metric update writes a shared file under a lock).
* The database's state (outbox messages per status and the oldest one's age, locked
  accounts): asked when scraped, through the apps' core, since every process sees the
  same rows.

With several workers (uvicorn ``--workers``), set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before start: each process writes its numbers there and whichever
worker answers the scrape adds them up (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from starlette.types import Scope

from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.pool import AdmissionGate
from fastapi_server.resources.database.postgres import Database
from fastapi_server.resources.http import APIRouter, DBs

logger = logging.getLogger(__name__)

SAMPLE_SECONDS = 1.0
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Anything else a client sends is counted as OTHER, so no client can add label values.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

if MULTIPROCESS_DIR:  # a fresh path (a tmpfs mount point's subfolder) may not exist yet
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)

# This process's metrics; in multiprocess mode they are written to MULTIPROCESS_DIR as well,
# and a scrape reads every process's files instead.
REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "http_requests",
    "Requests answered, by route template (unmatched: no route), method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
POOL_IN_USE = Gauge(
    "db_pool_connections_in_use",
    "Database connections checked out of the pools (every process).",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "db_pool_waiting_requests",
    "Requests waiting for a database connection (every process).",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
FLAGS_CACHED = Gauge(
    "feature_flags_cached",
    "Flags in the flag cache (the largest of the processes).",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
FLAG_CACHE_AGE = Gauge(
    "feature_flags_cache_age_seconds",
    "Seconds since the flag cache was last known to match the database (the oldest of the "
    "processes; +Inf before the first load).",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
LISTENER_UP = Gauge(
    "listener_connected",
    "1 when the LISTEN connection of every process running it is up, else 0, by listener: "
    "feature_flags, notifications_outbox (absent where no process runs it).",
    ["listener"],
    registry=REGISTRY,
    multiprocess_mode="livemin",
)


class _Listener(Protocol):
    @property
    def listening(self) -> bool: ...


class _Cache(Protocol):
    @property
    def rules(self) -> Any: ...

    @property
    def refreshed_at(self) -> float | None: ...


class _FlagListener(_Listener, Protocol):
    @property
    def cache(self) -> _Cache: ...


# Requests counted since the last flush, per ``REQUESTS`` child: a plain addition per
# request, where ``inc()`` in multiprocess mode writes the shared file under a lock.
# ``flush_request_counts`` adds them up every SAMPLE_SECONDS and before each scrape.
_unflushed: dict[Any, int] = {}


def flush_request_counts() -> None:
    """Move this process's pending request counts into ``REQUESTS``."""
    while _unflushed:
        child, count = _unflushed.popitem()
        child.inc(count)


# The REQUESTS and LATENCY children of each (route template, method, status) seen so far.
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def record(scope: Scope, status: int, seconds: float) -> None:
    """Count and time one HTTP request by its route template (``scope["route"]``, set by
    the router), never by its raw path, so the label values stay few. The request
    middleware (``main.RequestMiddleware``) calls it when metrics are on."""
    route = scope.get("route")
    template: str = getattr(route, "path", None) or "unmatched"
    method: str = scope["method"]
    key = (template, method, status)
    children = _children.get(key)
    if children is None:
        method = method if method in METHODS else "OTHER"
        children = (
            REQUESTS.labels(template, method, str(status)),
            LATENCY.labels(template, method),
        )
        _children[key] = children
    counter = children[0]
    _unflushed[counter] = _unflushed.get(counter, 0) + 1
    children[1].observe(seconds)


def sample(state: Any) -> None:
    """Set this process's gauges from what the lifespans left on ``app.state``, and flush
    its request counts."""
    flush_request_counts()
    database: Database = state.database
    POOL_IN_USE.set(database.connections_in_use())
    POOL_WAITING.set(AdmissionGate.waiting_in_process)
    flags: _FlagListener | None = getattr(state, "feature_flags_listener", None)
    if flags is not None:
        refreshed_at = flags.cache.refreshed_at
        FLAGS_CACHED.set(len(flags.cache.rules))
        FLAG_CACHE_AGE.set(
            float("inf") if refreshed_at is None else time.monotonic() - refreshed_at
        )
        LISTENER_UP.labels("feature_flags").set(int(flags.listening))
    worker: _Listener | None = getattr(state, "notifications_worker", None)
    if worker is not None:
        LISTENER_UP.labels("notifications_outbox").set(int(worker.listening))


async def _sample_forever(state: Any) -> None:
    while True:
        try:
            sample(state)
        except Exception:  # a bug here must not stop the sampling for good
            logger.exception("metrics: sampling failed")
        await asyncio.sleep(SAMPLE_SECONDS)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Sample this process's gauges until shutdown (when metrics are on)."""
    if not app.state.settings.metrics_enabled:
        yield
        return
    task = asyncio.create_task(_sample_forever(app.state), name="metrics-sampler")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        flush_request_counts()
        if MULTIPROCESS_DIR:  # this process's gauges leave with it; its counts stay
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _Families(Collector):
    """Metric families computed for one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


DatabaseFamilies = Callable[[Databases], Awaitable[list[Metric]]]
"""What the apps' tables say at scrape time (``app_metrics.database_families``): given
to ``instrument`` by ``main.py``, which may know the apps."""


router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, dbs: DBs) -> Response:
    """Every metric in Prometheus's text format (docs/operations.md lists them)."""
    sample(request.app.state)  # the answering process's gauges, as of now
    registry = CollectorRegistry()
    if MULTIPROCESS_DIR:
        multiprocess.MultiProcessCollector(registry, path=MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Families(list(REGISTRY.collect())))
    families: DatabaseFamilies = request.app.state.metrics_database_families
    registry.register(_Families(await families(dbs)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def instrument(app: FastAPI, database_families: DatabaseFamilies) -> None:
    """Serve ``/metrics`` with ``database_families`` among the metrics (call last in
    ``create_app``, whose request middleware then calls ``record``)."""
    app.state.metrics_database_families = database_families
    app.include_router(router)
