"""Who is calling, and may they? FastAPI dependencies for every app's endpoints.

``CurrentUser`` (401 without a valid Bearer access token or for an inactive user),
``OptionalUser`` (None without an Authorization header, 401 for a bad token) and
``Superuser`` (401, then 403 ``NOT_SUPERUSER``); ``caller_or_none``, a plain function,
reads the caller's identity from the token alone.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from fastapi_server.apps.users import core
from fastapi_server.apps.users.errors import NotAuthenticated, NotSuperuser
from fastapi_server.apps.users.models import User
from fastapi_server.resources.http import DBs

# tokenUrl makes /docs "Authorize" log in through POST /login.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="login", auto_error=False)


def _bearer_or_none(request: Request, token: str | None) -> str | None:
    if token is None and request.headers.get("authorization"):
        raise NotAuthenticated()  # present but not "Bearer <token>"
    return token


async def caller_or_none(request: Request) -> core.Caller | None:
    """The caller's identity read from the Bearer token alone: None without an
    Authorization header, 401 for a bad one. Called by a hot endpoint itself rather than
    declared as a dependency (each FastAPI dependency costs time on every request); it
    documents the token with ``OPTIONAL_BEARER``."""
    token = _bearer_or_none(request, await bearer_scheme(request))
    return None if token is None else core.caller_from_access_token(token)


# The OpenAPI security of an endpoint that takes an optional Bearer token without a
# dependency: the scheme of bearer_scheme ("Authorize" in /docs), or nothing.
OPTIONAL_BEARER: dict[str, Any] = {"security": [{"OAuth2PasswordBearer": []}, {}]}


async def optional_current_user(
    request: Request, dbs: DBs, token: Annotated[str | None, Depends(bearer_scheme)]
) -> User | None:
    """The caller, None when no Authorization header was sent; 401 for a bad one."""
    token = _bearer_or_none(request, token)
    return None if token is None else await core.user_from_access_token(dbs, token)


async def current_active_user(
    request: Request, dbs: DBs, token: Annotated[str | None, Depends(bearer_scheme)]
) -> User:
    """The caller, an active user with a valid access token; 401 otherwise.

    It takes the same inputs as ``optional_current_user`` rather than depending on it:
    each level of dependencies costs FastAPI time on every authenticated request.
    """
    user = await optional_current_user(request, dbs, token)
    if user is None:
        raise NotAuthenticated()
    return user


CurrentUser = Annotated[User, Depends(current_active_user)]
OptionalUser = Annotated[User | None, Depends(optional_current_user)]


async def require_superuser(user: CurrentUser) -> User:
    """The caller, if a superuser; 403 ``NOT_SUPERUSER`` otherwise."""
    if not user.is_superuser:
        raise NotSuperuser()
    return user


Superuser = Annotated[User, Depends(require_superuser)]
