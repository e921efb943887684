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
from fastapi_server.apps.users.settings import UsersSettings, get_users_settings
from fastapi_server.resources.http import DBs
from fastapi_server.resources.rate_limits import Limit, client_ip, enforce

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


# What each rate-limited action counts besides the client IP: its email (or, for
# verify, the account its token names), per minute or per hour.
_MINUTE, _HOUR = 60, 3600


def _subject_limit(action: str, settings: UsersSettings) -> Limit:
    per_subject = {
        "login": Limit(settings.rate_limit_login_per_email, _MINUTE),
        "register": Limit(settings.rate_limit_register_per_email, _HOUR),
        "verify": Limit(settings.rate_limit_verify_per_account, _MINUTE),
        "request-verification": Limit(settings.rate_limit_emails_per_address, _HOUR),
        "forgot-password": Limit(settings.rate_limit_emails_per_address, _HOUR),
    }
    return per_subject[action]


async def within_rate_limits(request: Request, action: str, subject: str | None) -> None:
    """429 ``RATE_LIMITED`` (with ``Retry-After``) when this client IP, or ``subject``
    (an email, counted under a keyed hash of it), made too many ``action`` requests.

    Every request counts, whatever its outcome or whether the email has an account,
    so the answer tells nothing about accounts.
    """
    settings = get_users_settings()
    if not settings.rate_limits_enabled:
        return
    per_ip = Limit(settings.rate_limit_per_ip, settings.rate_limit_ip_window_seconds)
    limits = {f"{action}:ip:{client_ip(request)}": per_ip}
    if subject:
        limits[f"{action}:subject:{core.pseudonym(subject)}"] = _subject_limit(action, settings)
    await enforce(request, limits)
