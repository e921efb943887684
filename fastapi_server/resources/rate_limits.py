"""Rate limits as the HTTP side applies them: a rule per counted thing, a 429 over it.

The counts live in PostgreSQL (``database/rate_limits.py``), so every worker and
instance shares them. They are taken by one statement that commits on its own, before the
request's work (``Database.bookkeeping``): a request that then fails still counts, and
a request waiting for a password hashing turn holds no connection meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from fastapi_server.lib.errors import AppError
from fastapi_server.resources.database.postgres import Database
from fastapi_server.resources.database.rate_limits import RateLimitsDB


class RateLimited(AppError):
    code = "RATE_LIMITED"
    status_code = 429
    message = "Too many requests; try again later."


@dataclass(frozen=True)
class Limit:
    """At most ``hits`` requests per fixed window of ``seconds``."""

    hits: int
    seconds: int


def client_ip(request: Request) -> str:
    """The client's address. Behind a proxy, uvicorn (``--proxy-headers``) puts the
    address from ``X-Forwarded-For`` here only when the proxy is in FORWARDED_ALLOW_IPS;
    anyone else's header is ignored."""
    return request.client.host if request.client else "unknown"


async def enforce(request: Request, limits: dict[str, Limit]) -> None:
    """Count this request under each key; ``RateLimited`` (``retry_after``: seconds until
    the latest of the exceeded windows ends) when any key is over its limit."""
    if not limits:
        return
    database: Database = request.app.state.database
    async with database.bookkeeping() as session:
        hits = await RateLimitsDB(session).hit(
            {key: limit.seconds for key, limit in limits.items()}
        )
    over = [hit.retry_after for key, hit in hits.items() if hit.hits > limits[key].hits]
    if over:
        raise RateLimited(retry_after=max(over))
