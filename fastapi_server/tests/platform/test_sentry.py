"""Sentry (the sentry extra): an unhandled error is reported to SENTRY_DSN's server.

The app runs in a subprocess: sentry-sdk patches FastAPI and Starlette for the rest of
the process it starts in, and the other tests must not run with those patches.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fastapi_server.tests.helpers.processes import REPO_ROOT

pytest.importorskip("sentry_sdk", reason="the sentry extra (in the dev requirements)")

APP_WITH_A_BUG = """
import asyncio, httpx, sentry_sdk
from fastapi_server.main import create_app

async def main():
    app = create_app()

    async def broken() -> None:
        raise RuntimeError("a bug for Sentry")

    app.add_api_route("/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url="http://test"
    ) as http:
        print((await http.get("/broken")).status_code)
    sentry_sdk.flush(timeout=10)

asyncio.run(main())
"""


@pytest.fixture
def sentry_server() -> Iterator[tuple[str, list[bytes]]]:
    """A stand-in for Sentry's ingest endpoint: keeps every envelope posted to it."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            gzipped = self.headers.get("Content-Encoding") == "gzip"
            received.append(gzip.decompress(body) if gzipped else body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://public@127.0.0.1:{server.server_address[1]}/1", received
    finally:
        server.shutdown()
        server.server_close()


def test_an_unhandled_error_is_reported_to_sentry(
    database_url: str, sentry_server: tuple[str, list[bytes]]
) -> None:
    dsn, received = sentry_server
    result = subprocess.run(
        [sys.executable, "-c", APP_WITH_A_BUG],
        cwd=REPO_ROOT,
        env={**os.environ, "SENTRY_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "500", result.stderr
    events = [envelope for envelope in received if b'"type":"event"' in envelope]
    assert events, f"nothing reported; received {len(received)} envelope(s)"
    assert b"a bug for Sentry" in events[0]
    assert b"/broken" in events[0]
