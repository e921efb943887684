"""The LISTEN connection that wakes a delivery worker as soon as a message is committed.

One dedicated asyncpg connection per worker (``application_name`` =
``notifications:<worker name>``, so psql's ``pg_stat_activity`` shows it) listens on
``CHANNEL``; ``enqueue`` NOTIFYs it, and PostgreSQL delivers the notice on commit.

* Each notice calls ``wake``; so does every (re)connection, for anything committed while
  nobody listened.
* A connection the server closes is noticed at once; every ``HEALTH_CHECK_SECONDS``
  while listening, ``SELECT 1`` notices one that died silently.
* While disconnected: reconnect with exponential backoff, from ``retry_seconds`` up to
  ``MAX_BACKOFF_SECONDS``. The worker's own poll delivers meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from fastapi_server.apps.notifications.database.postgres import CHANNEL

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
HEALTH_CHECK_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0
# What an unreachable or restarting database raises.
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class OutboxListener:
    """Keeps a LISTEN connection on ``CHANNEL`` up until ``stop()`` (see the module)."""

    def __init__(
        self, dsn: str, *, name: str, wake: Callable[[], None], retry_seconds: float
    ) -> None:
        self.dsn = dsn
        self.application_name = f"notifications:{name}"[:63]
        self.wake = wake
        self.retry_seconds = retry_seconds
        self.listening = False
        self._was_up = False  # the last connection got as far as listening
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Close the connection and return from ``run``."""
        self._stop.set()

    async def run(self) -> None:
        """Listen, reconnecting with backoff, until ``stop()``."""
        backoff = self.retry_seconds
        while not self._stop.is_set():
            self._was_up = False
            try:
                await self._listen()
            except DATABASE_ERRORS as exc:
                logger.debug("%s: cannot listen (%s)", self.application_name, exc)
            if self._was_up:
                backoff = self.retry_seconds
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._stop.wait()
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _listen(self) -> None:
        closed = asyncio.Event()
        connection: asyncpg.Connection[Any] = await asyncpg.connect(
            self.dsn,
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": self.application_name},
        )
        try:
            connection.add_termination_listener(lambda _: closed.set())
            await connection.add_listener(CHANNEL, lambda *_: self.wake())
            self.listening = self._was_up = True
            self.wake()  # anything committed before we listened
            while not self._stop.is_set() and not closed.is_set():
                if not await _either(self._stop, closed, within=HEALTH_CHECK_SECONDS):
                    await connection.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT_SECONDS)
        finally:
            self.listening = False
            try:
                await connection.close(timeout=1)
            except Exception:  # already broken
                connection.terminate()


async def _either(first: asyncio.Event, second: asyncio.Event, *, within: float) -> bool:
    """Wait until one of the events is set (True) or ``within`` seconds passed (False)."""
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        done, _ = await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return bool(done)
