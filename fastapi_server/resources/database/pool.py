"""An admission gate in front of the connection pool: waiting requests are served in order.

SQLAlchemy's asyncio pool keeps its idle connections in an ``asyncio.Queue``. When a
connection comes back, the queue wakes the longest waiter, but only schedules it: a
request that asks in between takes the connection first, and the waiter, finding the
queue empty again, queues up anew *at the back*. Under steady load above the pool size
a few requests lose that race over and over: with 16 requests per worker on 10
connections, ``GET /feature-flags`` had single requests waiting 1.6 s for a connection
while the median request took 9 ms (the same starvation is reported for asyncpg's pool,
MagicStack/asyncpg#1247).

So nobody waits in the pool: ``Database`` lets at most as many requests (and
transactions) at the database at once as its pool has connections, through an
``AdmissionGate``. Each admitted request uses one connection at a time, so the pool
always has one for it; the others wait at the gate, which hands a leaving holder's place
straight to the longest waiter and queues a newcomer behind those already waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator


class AdmissionGate:
    """At most ``limit`` holders at once; the others wait first come, first served.

    Invariant: free places and live waiters never coexist. ``leave`` hands its place to
    the longest waiter if there is one, so ``enter`` takes a free place only when nobody
    is waiting for one.
    """

    def __init__(self, limit: float = math.inf) -> None:
        self.limit = limit
        self.inside = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def waiting(self) -> int:
        """How many are waiting for a place."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def enter(self, timeout_s: float | None = None) -> None:
        """Take a place, waiting behind those already waiting; ``TimeoutError`` after
        ``timeout_s`` seconds without one."""
        if self.inside < self.limit and not self._waiters:
            self.inside += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter  # ``leave`` hands its place over: ``inside`` already counts it
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # given a place just as the wait ended: the next one gets it
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def leave(self) -> None:
        """Give the place up: to the longest waiter, or back to the free ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # skipped: a waiter that timed out or was cancelled
                waiter.set_result(None)
                return
        self.inside -= 1

    @contextlib.asynccontextmanager
    async def place(self, timeout_s: float | None = None) -> AsyncIterator[None]:
        """``enter``, then ``leave`` on the way out."""
        await self.enter(timeout_s)
        try:
            yield
        finally:
            self.leave()
