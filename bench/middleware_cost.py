"""What metrics add to each request, measured in isolation: the platform's request
middleware (``main.RequestMiddleware``) around a trivial ASGI app, without and with
``metrics.record``, in prometheus-client's multiprocess mode as ``--metrics`` runs it.

    PROMETHEUS_MULTIPROC_DIR=<an empty directory> python -m bench.middleware_cost

Prints one JSON object: the median CPU microseconds a request costs without and with
metrics, over alternating timed loops. A comparison of whole servers cannot resolve a
few microseconds on a shared machine; this can, and ``phases.metrics_cost`` sets it
against each endpoint's own CPU per request.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from starlette.types import ASGIApp, Message, Scope

from fastapi_server.main import RequestMiddleware
from fastapi_server.resources import metrics

LOOPS = 8
REQUESTS = 20_000


class _Route:
    path = "/feature-flags/evaluate"  # a route template, as the router leaves it in the scope


async def _answer(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> Message:
    return {"type": "http.request", "body": b""}


async def _send(message: Message) -> None:
    return None


def _scope() -> Scope:
    return {"type": "http", "method": "GET", "path": _Route.path, "headers": [], "route": _Route}


async def _cpu_us(app: ASGIApp) -> float:
    started = time.process_time()
    for _ in range(REQUESTS):
        await app(_scope(), _receive, _send)
    return (time.process_time() - started) / REQUESTS * 1e6


async def measure() -> dict[str, float]:
    """Median CPU µs per request without and with metrics."""
    apps = {"off": RequestMiddleware(_answer), "on": RequestMiddleware(_answer, metrics.record)}
    timings: dict[str, list[float]] = {key: [] for key in apps}
    for loop in range(LOOPS):
        for key in ("off", "on") if loop % 2 else ("on", "off"):  # neither always first
            timings[key].append(await _cpu_us(apps[key]))
    return {key: round(statistics.median(values), 2) for key, values in timings.items()}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure())))
