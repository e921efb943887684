"""Rate limit counters in PostgreSQL: fixed windows shared by every worker and instance."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, Text, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from fastapi_server.resources.database.base import Base

# Old windows are purged once every this many hits of a process (one DELETE on the
# window_end index), so the table holds about one row per key active in the last window.
PURGE_EVERY = 500


class RateLimitCounter(Base):
    """Hits of one key (rule and subject) in its current window."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(
        Text,
        primary_key=True,
        comment="What is counted: rule and subject, e.g. login:ip:203.0.113.9 or "
        "login:email:<keyed hash of the address>.",
    )
    window_start: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), comment="Start of the fixed window the hits belong to."
    )
    window_end: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), comment="End of that window; rows past it are purged."
    )
    hits: Mapped[int] = mapped_column(Integer, comment="Requests counted in the window.")

    __table_args__ = (
        Index("ix_rate_limit_counters_window_end", "window_end"),
        {"comment": "Rate limit counters (fixed windows), shared by every worker and instance."},
    )


# One statement per request, whatever the number of keys: count the hit in each key's
# window, or start a new window where the old one ended; answers each key's count and
# the seconds its window has left.
_HIT = text(
    """
    INSERT INTO rate_limit_counters AS c (key, window_start, window_end, hits)
    SELECT k, now(), now() + make_interval(secs => s), 1
    FROM unnest(CAST(:keys AS text[]), CAST(:seconds AS integer[])) AS u(k, s)
    ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN c.window_end > now() THEN c.hits + 1 ELSE 1 END,
        window_start = CASE WHEN c.window_end > now() THEN c.window_start
                            ELSE excluded.window_start END,
        window_end = CASE WHEN c.window_end > now() THEN c.window_end
                          ELSE excluded.window_end END
    RETURNING key, hits, extract(epoch FROM window_end - now()) AS seconds_left
    """
)
_PURGE = text("DELETE FROM rate_limit_counters WHERE window_end < now()")
_hits_counted = itertools.count(1)


@dataclass(frozen=True)
class Hit:
    """A key's count in its window, and the whole seconds until the window ends."""

    hits: int
    retry_after: int


class RateLimitsDB:
    """Queries on ``rate_limit_counters``, on the caller's session (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def hit(self, windows: dict[str, int]) -> dict[str, Hit]:
        """Count one request under each key (key -> its window in seconds), in one
        statement; now and then, purge the windows that ended."""
        keys = sorted(windows)  # one lock order for every request: no deadlock
        rows = await self.session.execute(
            _HIT, {"keys": keys, "seconds": [windows[key] for key in keys]}
        )
        hits = {
            str(row.key): Hit(int(row.hits), max(1, math.ceil(float(row.seconds_left))))
            for row in rows
        }
        if next(_hits_counted) % PURGE_EVERY == 0:
            await self.purge()
        return hits

    async def purge(self) -> int:
        """Drop the counters whose window ended; how many."""
        result = await self.session.execute(_PURGE)
        return int(getattr(result, "rowcount", 0) or 0)
