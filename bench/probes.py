"""Measurements that are not wrk runs: a paced latency probe and an in-process micro-benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import math
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

PROBE_CONNECTIONS = 4  # keep-alive connections, so that every worker gets probed
PROBE_INTERVAL_S = 0.005


@dataclass(frozen=True)
class ProbeResult:
    """Latencies of a paced probe, in milliseconds."""

    samples: int
    failures: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1
    return ordered[rank]


def probe_latency(port: int, path: str, duration_s: float) -> ProbeResult:
    """GET ``path`` every few milliseconds for ``duration_s``, one request at a time.

    A light, paced client: it measures how long the server takes to answer while
    something else loads it, without adding load of its own.
    """
    connections = [
        http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(PROBE_CONNECTIONS)
    ]
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + duration_s
    turn = 0
    try:
        while time.monotonic() < deadline:
            conn = connections[turn % len(connections)]
            turn += 1
            started = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()  # reconnects at the next request
                ok = False
            if ok:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                failures += 1
            time.sleep(PROBE_INTERVAL_S)
    finally:
        for conn in connections:
            conn.close()
    return ProbeResult(
        samples=len(latencies),
        failures=failures,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=0.0),
    )


@dataclass(frozen=True)
class MicroResult:
    """Seconds per call of ``is_enabled`` (or ``get_value``): the best of several timed loops."""

    label: str
    codename: str
    calls: int
    best_us: float
    median_us: float


async def _time_calls(
    call: Callable[[], Awaitable[object]], calls: int, repeats: int
) -> list[float]:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            await call()
        timings.append((time.perf_counter() - started) / calls * 1e6)
    return timings


async def micro_is_enabled(
    database_url: str, anonymous_flag: str, user_flag: str, calls: int, repeats: int
) -> tuple[list[MicroResult], str | None]:
    """Time ``is_enabled()`` and ``get_value()`` in this process, on a warm cache;
    (results, why not). ``get_value`` is left out where the core has none."""
    try:
        from fastapi_server.apps.feature_flags.core import is_enabled
    except ImportError as exc:
        return [], f"feature flags core is missing ({exc})"
    from bench.stack import STRING_FLAG
    from fastapi_server.apps.feature_flags import core
    from fastapi_server.config import Settings
    from fastapi_server.main import create_app

    settings = Settings(database_url=database_url, env="production", log_level="WARNING")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + 10
        while not await is_enabled(anonymous_flag):
            if time.monotonic() > deadline:
                return [], f"the flag cache never served {anonymous_flag} (is it loaded?)"
            await asyncio.sleep(0.05)
        user = _User(uuid.uuid4())
        cases: list[tuple[str, str, Callable[[], Awaitable[object]]]] = [
            ("is_enabled(flag)", anonymous_flag, lambda: is_enabled(anonymous_flag)),
            ("is_enabled(flag, user)", user_flag, lambda: is_enabled(user_flag, user)),
        ]
        get_value = getattr(core, "get_value", None)
        if get_value is not None:
            cases += [
                (
                    "get_value(flag, default)",
                    anonymous_flag,
                    lambda: get_value(anonymous_flag, False),
                ),
                (
                    "get_value(string flag, default, user)",
                    STRING_FLAG,
                    lambda: get_value(STRING_FLAG, "", user),
                ),
            ]
        results = []
        for label, codename, call in cases:
            await _time_calls(call, min(calls, 10_000), 1)  # warm-up
            timings = await _time_calls(call, calls, repeats)
            results.append(
                MicroResult(label, codename, calls, min(timings), statistics.median(timings))
            )
    return results, None


@dataclass(frozen=True)
class _User:
    id: uuid.UUID


def run_micro(
    database_url: str, anonymous_flag: str, user_flag: str, calls: int, repeats: int
) -> tuple[list[MicroResult], str | None]:
    """``micro_is_enabled`` on the event loop production uses (uvloop when available)."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):  # Windows has no uvloop
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(micro_is_enabled(database_url, anonymous_flag, user_flag, calls, repeats))
