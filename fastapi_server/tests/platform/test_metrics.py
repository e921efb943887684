"""GET /metrics: off by default; with two uvicorn workers, one scrape counts both."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from fastapi_server.resources import metrics
from fastapi_server.tests.helpers.processes import LiveServer

SENT = {"/_ready": 6, "/feature-flags/no-such-flag": 4, "/no/such/path": 2}
GAUGES = (
    "db_pool_connections_in_use",
    "db_pool_waiting_requests",
    "feature_flags_cached",
    "feature_flags_cache_age_seconds",
    "notifications_outbox_oldest_unsent_age_seconds",
    "users_locked_accounts",
    "database_up",
)


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_are_off_unless_enabled(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 404


def test_two_workers_one_scrape_shows_every_metric(database_url: str, tmp_path: Path) -> None:
    server = LiveServer(
        {"METRICS_ENABLED": "true", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}, workers=2
    )
    # No keep-alive: every request opens a new connection, so both workers answer some.
    fresh = httpx.Limits(max_keepalive_connections=0)
    try:
        with httpx.Client(base_url=server.url, limits=fresh) as http:
            for path, times in SENT.items():
                for _ in range(times):
                    http.get(path)
            # Each worker writes its request counts every second: past that, one scrape
            # holds both workers' (the answering worker's own are always current).
            time.sleep(metrics.SAMPLE_SECONDS + 0.5)
            scrapes = [http.get("/metrics") for _ in range(4)]
    finally:
        server.stop()
    assert {scrape.status_code for scrape in scrapes} == {200}
    assert scrapes[0].headers["content-type"].startswith("text/plain")
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # both workers counted requests
    samples = _samples(scrapes[-1].text)

    def requests(route: str, status: str) -> float:
        labels = frozenset({("route", route), ("method", "GET"), ("status", status)})
        return samples.get(("http_requests_total", labels), 0.0)

    # Whichever worker answered, the counts are both workers' together.
    assert requests("/_ready", "200") == SENT["/_ready"]
    assert requests("/feature-flags/{codename}", "404") == SENT["/feature-flags/no-such-flag"]
    assert requests("unmatched", "404") == SENT["/no/such/path"]
    latency = frozenset({("route", "/_ready"), ("method", "GET")})
    assert samples[("http_request_duration_seconds_count", latency)] == SENT["/_ready"]
    for gauge in GAUGES:
        assert (gauge, frozenset()) in samples, gauge
    assert samples[("database_up", frozenset())] == 1
    for listener in ("feature_flags", "notifications_outbox"):
        assert samples[("listener_connected", frozenset({("listener", listener)}))] == 1
    assert samples[("feature_flags_cache_age_seconds", frozenset())] < 60
    for status in ("pending", "sending", "sent", "failed"):
        assert ("notifications_outbox_messages", frozenset({("status", status)})) in samples
