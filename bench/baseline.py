"""The bare baseline: the least a Python server can do for each endpoint we measure.

It runs under the very same uvicorn settings as the API (``bench/run.py`` starts it with
``uvicorn --factory bench.baseline:create_app``), so the ratio API / baseline tells what
our framework, layers and rules cost on this machine, whatever the machine.

* ``GET /json``: a fixed JSON body (no database).
* ``GET /flags``: one asyncpg query, ``SELECT codename, is_active FROM feature_flags``,
  through one pool per process made at start-up.
* ``GET /user``: an HS256 JWT check (PyJWT) and a primary-key lookup of the user.

Environment: ``BENCH_DATABASE_URL`` (a PostgreSQL URL) and ``BENCH_JWT_SECRET``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fastapi_server.lib.database_url import to_asyncpg_dsn

# As many connections as the API's pool holds: DB_POOL_SIZE + DB_MAX_OVERFLOW (10 + 0).
POOL_MAX_SIZE = 10
TOKEN_AUDIENCE = "bench:access"  # noqa: S105 -- a JWT audience, not a secret
FIXED_BODY = {"status": "running"}
FLAGS_SQL = "SELECT codename, is_active FROM feature_flags"
USER_SQL = "SELECT id, email, first_name, last_name, is_active FROM users WHERE id = $1"


def _unauthorized() -> JSONResponse:
    return JSONResponse({"detail": "unauthorized"}, status_code=401)


def create_app() -> Starlette:
    """The baseline app, configured from the environment."""
    dsn = to_asyncpg_dsn(os.environ["BENCH_DATABASE_URL"])
    secret = os.environ["BENCH_JWT_SECRET"]
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=POOL_MAX_SIZE,
            server_settings={"application_name": "bench:baseline"},
        )
        pools.append(pool)
        try:
            yield
        finally:
            await pool.close()

    async def fixed_json(request: Request) -> JSONResponse:
        return JSONResponse(FIXED_BODY)

    async def flags(request: Request) -> JSONResponse:
        rows = await pools[0].fetch(FLAGS_SQL)
        return JSONResponse(
            [{"codename": r["codename"], "is_active": r["is_active"]} for r in rows]
        )

    async def user(request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _unauthorized()
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"], audience=TOKEN_AUDIENCE)
            user_id = uuid.UUID(str(claims["user_id"]))
        except (jwt.InvalidTokenError, KeyError, ValueError):
            return _unauthorized()
        row = await pools[0].fetchrow(USER_SQL, user_id)
        if row is None or not row["is_active"]:
            return _unauthorized()
        return JSONResponse(
            {
                "id": str(row["id"]),
                "email": row["email"],
                "first_name": row["first_name"],
                "last_name": row["last_name"],
            }
        )

    routes = [Route("/json", fixed_json), Route("/flags", flags), Route("/user", user)]
    return Starlette(routes=routes, lifespan=lifespan)
