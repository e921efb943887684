"""The delivery worker: sends committed outbox rows, retries, gives up, never sends twice.

Runs inside each API process by default (``lifespan.py``) and standalone for production::

    python -m fastapi_server.apps.notifications.worker

Any number of workers may run at once. Each loop:

1. claims a batch of due rows in a short transaction (``SELECT ... FOR UPDATE SKIP
   LOCKED``: rows another worker is claiming are skipped, never shared), marks them
   ``sending`` with a lease (``next_attempt_on = now() + lease``), and commits;
2. sends each message outside any transaction, right after renewing (fenced, below) the
   lease on it and on the rest of the batch, so a batch may take longer than one lease;
   a message some other worker has taken over meanwhile is skipped;
3. records the outcome in another short transaction: ``sent``, or ``pending`` again
   with exponential backoff, or ``failed`` after ``NOTIFICATIONS_MAX_ATTEMPTS``.

A worker that dies mid-batch leaves rows in ``sending``; once their lease runs out any
worker claims them again. ``attempts`` grows at every claim and fences the outcome
updates, so a worker whose lease was taken over changes nothing. A send is bounded by
``NOTIFICATIONS_SMTP_TIMEOUT_SECONDS`` and the lease must be at least twice that (the
settings refuse less), so the lease renewed before a send outlives it. The worker sleeps until
a ``NOTIFY`` (sent by ``enqueue``, delivered on commit), the next due row, or the poll
interval, whichever comes first. SIGTERM/SIGINT: finish the message being sent, hand
the rest of the batch back, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence

from pydantic import ValidationError

from fastapi_server.apps.notifications import core
from fastapi_server.apps.notifications.database.listener import OutboxListener
from fastapi_server.apps.notifications.messages import build_email
from fastapi_server.apps.notifications.models import OutboxStatus
from fastapi_server.apps.notifications.schemas import ClaimedMessage
from fastapi_server.apps.notifications.settings import (
    NotificationsSettings,
    get_notifications_settings,
)
from fastapi_server.apps.notifications.transports import (
    Transport,
    check_transport,
    transport_from_settings,
)
from fastapi_server.config import Settings, describe_settings_error, get_settings
from fastapi_server.lib.database_url import to_asyncpg_dsn
from fastapi_server.lib.logging import configure_logging
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database

logger = logging.getLogger(__name__)

# A row due but locked by someone else (another worker claiming it, an admin's open
# transaction) must not make the loop spin.
MIN_IDLE_SECONDS = 0.05
LISTENER_STOP_SECONDS = 2.0


def worker_name(kind: str) -> str:
    """``host:pid:kind:tag``, stored in ``claimed_by`` so psql shows who holds a row."""
    return f"{socket.gethostname()}:{os.getpid()}:{kind}:{secrets.token_hex(2)}"


class DeliveryWorker:
    """Delivers the outbox of the database behind ``database`` (see the module)."""

    def __init__(
        self,
        database: Database,
        dsn: str,
        settings: NotificationsSettings,
        transport: Transport | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self.database = database
        self.dsn = dsn
        self.settings = settings
        self.transport = transport or transport_from_settings(settings)
        self.name = name or worker_name("worker")
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self.listener = OutboxListener(
            dsn, name=self.name, wake=self._wake.set, retry_seconds=settings.poll_seconds
        )

    def stop(self) -> None:
        """Ask the worker to finish the message in hand and return from ``run``."""
        self._stop.set()
        self._wake.set()
        self.listener.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def listening(self) -> bool:
        """The worker's LISTEN connection is up (new messages wake it at once)."""
        return self.listener.listening

    async def run(self) -> None:
        """Deliver until ``stop()``; database outages are logged and waited out."""
        logger.info(
            "notifications worker %s started (transport %s)", self.name, self.settings.transport
        )
        listener = asyncio.create_task(self.listener.run(), name=f"{self.name}:listen")
        try:
            while not self.stopping:
                self._wake.clear()
                try:
                    await self.deliver_due()
                    delay = await self._idle_seconds()
                except Exception as exc:  # database down, ...: keep the worker alive
                    logger.warning(
                        "notifications worker %s: %s: %s", self.name, type(exc).__name__, exc
                    )
                    delay = self.settings.poll_seconds
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
        finally:
            self.listener.stop()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(listener, timeout=LISTENER_STOP_SECONDS)
            logger.info("notifications worker %s stopped", self.name)

    async def deliver_due(self) -> int:
        """Claim and send batches until nothing is due (or stopping); how many were tried."""
        tried = 0
        while not self.stopping:
            async with self._transaction() as dbs:
                batch = await core.claim_due(dbs, self.settings, self.name)
            if not batch:
                break
            tried += await self._deliver_batch(batch)
        return tried

    async def _deliver_batch(self, batch: Sequence[ClaimedMessage]) -> int:
        """Send ``batch`` in order, renewing the lease on the rest before each send."""
        tried = 0
        waiting = list(batch)
        while waiting:
            if self.stopping:
                await self._release(waiting)
                break
            async with self._transaction() as dbs:
                still_ours = await core.renew_leases(dbs, self.settings, self.name, waiting)
            for lost in set(waiting) - set(still_ours):
                logger.warning("email %s: taken over by another worker; not sending", lost.id)
            if not still_ours:
                break
            message, *waiting = still_ours
            await self._deliver(message)
            tried += 1
        return tried

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Databases]:
        async with self.database.transaction() as session:
            yield Databases(session)

    async def _deliver(self, message: ClaimedMessage) -> None:
        try:
            email = build_email(message, self.settings)
        except ValueError as exc:  # an unusable address: retrying cannot help
            await self._record_failure(message, f"cannot build the message: {exc}", permanent=True)
            return
        try:
            await self.transport.send(
                email, sender=self.settings.from_email, recipient=message.to_email
            )
        except Exception as exc:  # any transport error: record it, retry later
            await self._record_failure(message, f"{type(exc).__name__}: {exc}")
            return
        async with self._transaction() as dbs:
            recorded = await core.record_sent(dbs, message)
        if recorded:
            logger.info("email %s sent (attempt %d)", message.id, message.attempts)
        else:
            logger.warning("email %s sent, but its lease had been taken over", message.id)

    async def _record_failure(
        self, message: ClaimedMessage, error: str, *, permanent: bool = False
    ) -> None:
        async with self._transaction() as dbs:
            status = await core.record_failure(
                dbs, self.settings, message, error, permanent=permanent
            )
        if status is OutboxStatus.FAILED:
            logger.error(
                "email %s failed for good after %d attempts: %s",
                message.id,
                message.attempts,
                error,
            )
        else:
            logger.warning(
                "email %s: attempt %d failed, will retry: %s", message.id, message.attempts, error
            )

    async def _release(self, messages: Sequence[ClaimedMessage]) -> None:
        async with self._transaction() as dbs:
            for message in messages:
                await core.release(dbs, message)

    async def _idle_seconds(self) -> float:
        async with self._transaction() as dbs:
            due_in = await core.seconds_until_next_due(dbs)
        if due_in is None:
            return self.settings.poll_seconds
        return min(max(due_in, MIN_IDLE_SECONDS), self.settings.poll_seconds)


def _settings_for(url: str) -> Settings:
    return get_settings().model_copy(
        update={"database_url": url, "db_pool_size": 2, "db_max_overflow": 0}
    )


async def serve(
    url: str, settings: NotificationsSettings | None = None, *, listen_url: str | None = None
) -> None:
    """Run one worker on ``url`` until SIGTERM or SIGINT; its LISTEN connection goes to
    ``listen_url`` (DATABASE_LISTEN_URL: past any pooler), else to ``url``."""
    database = Database.from_settings(_settings_for(url), "notifications-worker")
    worker = DeliveryWorker(
        database, to_asyncpg_dsn(listen_url or url), settings or get_notifications_settings()
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still interrupts
            loop.add_signal_handler(signum, worker.stop)
    try:
        await worker.run()
    finally:
        await database.dispose()


def main() -> None:
    """Entry point: DATABASE_URL, else the local embedded server (development)."""
    try:
        settings = get_settings()
        configure_logging(settings.log_level, settings.effective_log_format)
        check_transport(settings.env, get_notifications_settings())
        if settings.database_url:
            asyncio.run(serve(settings.database_url, listen_url=settings.listen_url))
        else:
            from init.database import tool_database_url  # development only

            with tool_database_url() as url:
                asyncio.run(serve(url))
    except KeyboardInterrupt:
        pass
    except ValidationError as exc:  # a bad setting: name it, in one line
        print(f"error: {describe_settings_error(exc)}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
