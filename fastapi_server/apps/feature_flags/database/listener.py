"""The LISTEN connection that keeps this process's flag cache fresh.

One dedicated asyncpg connection per process (``application_name`` =
``LISTENER_APPLICATION_NAME``, so psql's ``pg_stat_activity`` shows it) listens on
``feature_flags_changed``; the trigger of migration 0003 sends the changed codename (an
empty payload means "reload everything"), delivered on commit, whoever made the change.

* On a notice: reload the flags named (coalesced; many at once -> one full reload).
* After (re)connecting: LISTEN first, then a full reload, so no change slips between.
* Every ``refresh_interval_seconds`` while listening: ``SELECT 1``, so a silently dead
  connection is noticed.
* While disconnected: reconnect with exponential backoff (up to
  ``reconnect_max_backoff_seconds``) and, meanwhile, reload everything every
  ``refresh_interval_seconds`` over a short-lived connection; a poll that works triggers
  an immediate reconnect.
* When the database is unreachable the cache keeps its last values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import asyncpg

from fastapi_server.apps.feature_flags.cache import FlagCache, FlagRule
from fastapi_server.apps.feature_flags.settings import FeatureFlagsSettings

logger = logging.getLogger(__name__)

CHANNEL = "feature_flags_changed"
LISTENER_APPLICATION_NAME = "api:feature-flags-listener"
POLLER_APPLICATION_NAME = "api:feature-flags-poll"
RULES_SQL = (
    "SELECT codename, is_active, user_ids, rollout_percentage, flag_type, variants, "
    "default_variant, off_variant, weights FROM feature_flags"
)
# Past this many flags named in one batch of notices, one full reload is cheaper.
FULL_RELOAD_THRESHOLD = 50
FIRST_BACKOFF_SECONDS = 0.1
# What an unreachable or restarting database raises.
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _rule(row: asyncpg.Record) -> FlagRule:
    variants = json.loads(row["variants"])  # jsonb arrives as text on this connection
    typed = (
        {}
        if not variants
        else {
            "flag_type": row["flag_type"],
            "variants": MappingProxyType(variants),
            "default_variant": row["default_variant"],
            "off_variant": row["off_variant"],
            "weights": json.loads(row["weights"]),
        }
    )
    return FlagRule(
        codename=row["codename"],
        is_active=row["is_active"],
        user_ids=frozenset(uuid.UUID(int=user_id.int) for user_id in row["user_ids"]),
        rollout_percentage=row["rollout_percentage"],
        **typed,
    )


class FlagListener:
    """Fills ``cache`` from the database at ``dsn`` and keeps it fresh (see the module)."""

    def __init__(self, dsn: str, cache: FlagCache, settings: FeatureFlagsSettings) -> None:
        self.dsn = dsn
        self.cache = cache
        self.settings = settings
        self.listening = False
        self._was_up = False  # the last _listen() got as far as listening
        self._pending: set[str] = set()
        self._reload_all = False
        self._wake = asyncio.Event()  # a notice arrived, or the connection closed
        self._reconnect_now = asyncio.Event()
        self._first_attempt_done = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start listening; wait for the first load unless the database is unreachable."""
        self._tasks = [
            asyncio.create_task(self._run(), name="feature-flags-listener"),
            asyncio.create_task(self._poll(), name="feature-flags-poll"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.connect_timeout_seconds * 2):
                await self._first_attempt_done.wait()

    async def stop(self) -> None:
        """Stop both tasks and close the connection."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _connect(self, application_name: str) -> asyncpg.Connection[Any]:
        connection: asyncpg.Connection[Any] = await asyncpg.connect(
            self.dsn,
            timeout=self.settings.connect_timeout_seconds,
            server_settings={"application_name": application_name},
        )
        return connection

    async def _fetch(
        self, connection: asyncpg.Connection[Any], codenames: Sequence[str] | None = None
    ) -> list[FlagRule]:
        timeout = self.settings.connect_timeout_seconds
        if codenames is None:
            rows = await connection.fetch(RULES_SQL, timeout=timeout)
        else:
            where = " WHERE codename = ANY($1::text[])"
            rows = await connection.fetch(RULES_SQL + where, list(codenames), timeout=timeout)
        return [_rule(row) for row in rows]

    async def _run(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        outage_logged = False
        while True:
            try:
                await self._listen()
            except DATABASE_ERRORS as exc:
                if outage_logged:
                    logger.debug("feature flags: cannot listen (%s)", exc)
                else:  # once per outage
                    serving = "the last values" if self.cache.loaded else "every flag off"
                    logger.warning(
                        "feature flags: no listening connection (%s); serving %s", exc, serving
                    )
                    outage_logged = True
            except Exception:  # a bug must not stop the refreshing for good
                logger.exception("feature flags: listener failed; restarting it")
            finally:
                self._first_attempt_done.set()
            if self._was_up:
                backoff, outage_logged = FIRST_BACKOFF_SECONDS, False
            self._reconnect_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._reconnect_now.wait()
            backoff = min(backoff * 2, self.settings.reconnect_max_backoff_seconds)

    async def _listen(self) -> None:
        self._was_up = False
        connection = await self._connect(LISTENER_APPLICATION_NAME)
        try:
            connection.add_termination_listener(self._on_closed)
            await connection.add_listener(CHANNEL, self._on_notice)
            # Notices from here on are covered by the full reload below.
            self._wake.clear()
            self._pending.clear()
            self._reload_all = False
            self.cache.replace_all(await self._fetch(connection))
            self.listening = self._was_up = True
            self._first_attempt_done.set()
            logger.info("feature flags: listening; %d flags loaded", len(self.cache.rules))
            await self._serve_notices(connection)
        finally:
            self.listening = False
            await self._close(connection)

    async def _serve_notices(self, connection: asyncpg.Connection[Any]) -> None:
        interval = self.settings.refresh_interval_seconds
        while True:
            try:
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            except TimeoutError:  # quiet for a while: is the connection still alive?
                await connection.fetchval("SELECT 1", timeout=self.settings.connect_timeout_seconds)
                self.cache.confirm_fresh()
                continue
            self._wake.clear()
            if connection.is_closed():
                raise ConnectionError("the listening connection was closed")
            await self._apply_pending(connection)

    async def _apply_pending(self, connection: asyncpg.Connection[Any]) -> None:
        if self._reload_all or len(self._pending) > FULL_RELOAD_THRESHOLD:
            self._reload_all = False
            self._pending.clear()
            self.cache.replace_all(await self._fetch(connection))
        elif self._pending:
            codenames = sorted(self._pending)
            self._pending.clear()
            self.cache.update(codenames, await self._fetch(connection, codenames))

    def _on_notice(self, connection: object, pid: int, channel: str, payload: object) -> None:
        if isinstance(payload, str) and payload:
            self._pending.add(payload)
        else:
            self._reload_all = True
        self._wake.set()

    def _on_closed(self, connection: object) -> None:
        self._wake.set()

    async def _close(self, connection: asyncpg.Connection[Any]) -> None:
        try:
            await connection.close(timeout=1)
        except Exception:  # already broken: drop it without the goodbye
            connection.terminate()

    async def _poll(self) -> None:
        """While not listening, reload everything every refresh interval."""
        while True:
            await asyncio.sleep(self.settings.refresh_interval_seconds)
            if self.listening:
                continue
            try:
                connection = await self._connect(POLLER_APPLICATION_NAME)
                try:
                    rules = await self._fetch(connection)
                finally:
                    await self._close(connection)
                if not self.listening:  # else the listener loaded a newer snapshot meanwhile
                    self.cache.replace_all(rules)
            except DATABASE_ERRORS as exc:
                logger.debug("feature flags: poll failed (%s)", exc)
                continue
            except Exception:
                logger.exception("feature flags: poll failed")
                continue
            self._reconnect_now.set()  # the database answers again: listen now
