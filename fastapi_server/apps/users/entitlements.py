"""Who is calling, and may they? FastAPI dependencies for every app's endpoints.

``CurrentUser`` (401 without a valid Bearer access token or for an inactive user),
``OptionalUser`` (None without an Authorization header, 401 for a bad token) and
``Superuser`` (401, then 403 ``NOT_SUPERUSER``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from fastapi_server.apps.users import core
from fastapi_server.apps.users.errors import NotAuthenticated, NotSuperuser
from fastapi_server.apps.users.models import User
from fastapi_server.resources.database.databases import DBs

# tokenUrl makes /docs "Authorize" log in through POST /login.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="login", auto_error=False)


def _bearer_or_none(request: Request, token: str | None) -> str | None:
    if token is None and request.headers.get("authorization"):
        raise NotAuthenticated()  # present but not "Bearer <token>"
    return token


async def optional_caller(
    request: Request, token: Annotated[str | None, Depends(bearer_scheme)]
) -> core.Caller | None:
    """The caller's identity from the token alone; None without an Authorization header."""
    token = _bearer_or_none(request, token)
    return None if token is None else core.caller_from_access_token(token)


async def optional_current_user(
    request: Request, dbs: DBs, token: Annotated[str | None, Depends(bearer_scheme)]
) -> User | None:
    """The caller, None when no Authorization header was sent; 401 for a bad one."""
    token = _bearer_or_none(request, token)
    return None if token is None else await core.user_from_access_token(dbs, token)


async def current_active_user(
    user: Annotated[User | None, Depends(optional_current_user)],
) -> User:
    """The caller, an active user with a valid access token; 401 otherwise."""
    if user is None:
        raise NotAuthenticated()
    return user


CurrentUser = Annotated[User, Depends(current_active_user)]
OptionalUser = Annotated[User | None, Depends(optional_current_user)]
OptionalCaller = Annotated[core.Caller | None, Depends(optional_caller)]


async def require_superuser(user: CurrentUser) -> User:
    """The caller, if a superuser; 403 ``NOT_SUPERUSER`` otherwise."""
    if not user.is_superuser:
        raise NotSuperuser()
    return user


Superuser = Annotated[User, Depends(require_superuser)]
