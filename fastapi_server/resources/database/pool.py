"""An admission gate in front of the connection pool: waiting requests are served in order.

SQLAlchemy's asyncio pool keeps its idle connections in an ``asyncio.Queue``. When a
connection comes back, the queue wakes the longest waiter, but only schedules it: a
request that asks in between takes the connection first, and the waiter, finding the
queue empty again, queues up anew *at the back*. Under steady load above the pool size
a few requests lose that race over and over: with 16 requests per worker on 10
connections, ``GET /feature-flags`` had single requests waiting 1.6 s for a connection
while the median request took 9 ms (the same starvation is reported for asyncpg's pool,
MagicStack/asyncpg#1247).

So nobody waits in the pool: every session ``Database`` makes is an ``AdmittedSession``,
which takes a place at the database's ``AdmissionGate`` before its first use of a
connection and gives it back when it closes. The gate has as many places as the pool has
connections, and a session uses one connection, so the pool always has one for an
admitted session; the others wait at the gate, which hands a leaving holder's place
straight to the longest waiter and queues a newcomer behind those already waiting. A
request that never touches the database, or has not yet (a login waiting for a hashing
thread), holds no place.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession


class AdmissionGate:
    """At most ``limit`` holders at once; the others wait first come, first served.

    Invariant: free places and live waiters never coexist. ``leave`` hands its place to
    the longest waiter if there is one, so ``enter`` takes a free place only when nobody
    is waiting for one.
    """

    # Sessions waiting at every gate of this process (for the metrics).
    waiting_in_process = 0

    def __init__(self, limit: float = math.inf, wait_s: float | None = None) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self.inside = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def waiting(self) -> int:
        """How many are waiting for a place."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def enter(self) -> None:
        """Take a place, waiting behind those already waiting. After ``wait_s`` seconds
        without one, SQLAlchemy's pool ``TimeoutError``, as when waiting for a connection."""
        if self.inside < self.limit and not self._waiters:
            self.inside += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        AdmissionGate.waiting_in_process += 1
        try:
            async with asyncio.timeout(self.wait_s):
                await waiter  # ``leave`` hands its place over: ``inside`` already counts it
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # given a place just as the wait ended: the next one gets it
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(
                    f"no database connection free within {self.wait_s} s ({self.waiting()} waiting)"
                ) from exc
            raise
        finally:
            AdmissionGate.waiting_in_process -= 1

    def leave(self) -> None:
        """Give the place up: to the longest waiter, or back to the free ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # skipped: a waiter that timed out or was cancelled
                waiter.set_result(None)
                return
        self.inside -= 1


class AdmittedSession(AsyncSession):
    """An ``AsyncSession`` that enters ``gate`` before its first use of a connection
    (any method that may run a statement) and leaves it when closed.

    Everything else is ``AsyncSession``'s. ``commit`` takes a place only when it has
    changes to flush, and ``rollback`` none: ending a session that never ran a statement
    makes nobody wait.
    """

    def __init__(self, *args: Any, gate: AdmissionGate, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate
        self.admitted = False

    async def admit(self) -> None:
        """Take a place at the gate, unless this session holds one already."""
        if not self.admitted:
            await self.gate.enter()
            self.admitted = True

    async def commit(self) -> None:
        if self.new or self.dirty or self.deleted:
            await self.admit()
        await super().commit()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self._leave()

    async def reset(self) -> None:
        try:
            await super().reset()
        finally:
            self._leave()

    def _leave(self) -> None:
        if self.admitted:
            self.admitted = False
            self.gate.leave()


def _admitting(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    """``AsyncSession``'s method ``name``, entering the gate first."""
    method = getattr(AsyncSession, name)

    @functools.wraps(method)
    async def admitting(self: AdmittedSession, *args: Any, **kwargs: Any) -> Any:
        await self.admit()
        return await method(self, *args, **kwargs)

    return admitting


# Every AsyncSession method that may check a connection out. Set on the class rather than
# written out, so that callers keep AsyncSession's exact (overloaded) signatures.
for _name in (
    "connection",
    "delete",
    "delete_all",
    "execute",
    "flush",
    "get",
    "get_one",
    "merge",
    "merge_all",
    "refresh",
    "run_sync",
    "scalar",
    "scalars",
    "stream",
    "stream_scalars",
):
    setattr(AdmittedSession, _name, _admitting(_name))
