"""Who may do what with feature flags (FastAPI dependencies used by ``api``).

Reading flags (list, one flag, evaluate) is open to anyone, but a flag's targeting
(``user_ids``, ``rollout_percentage``) and description are for superusers only
(``sees_targeting``); everyone else reads ``{codename, label, is_active}``. ``evaluate``
uses the caller's identity when a Bearer token is given, read from the token alone so
that evaluation stays free of database work (a token revoked a moment ago still sees its
own flag values until it expires; it can change nothing). Changing flags and reading their history
is for superusers (401 without a valid token, 403 ``NOT_SUPERUSER`` otherwise). A route
that exists only while a flag is on depends on ``require_flag``.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from fastapi_server.apps.feature_flags.core import is_enabled
from fastapi_server.apps.feature_flags.errors import FeatureDisabled, OfrepUnauthorized
from fastapi_server.apps.feature_flags.settings import get_feature_flags_settings
from fastapi_server.apps.users.entitlements import (
    OPTIONAL_BEARER,
    Superuser,
    bearer_scheme,
    caller_or_none,
    optional_current_user,
)
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.http import databases_of

FlagAdmin = Superuser
flag_reader = caller_or_none  # called by the evaluate endpoint itself, not as a dependency
FLAG_READER_SECURITY = OPTIONAL_BEARER


async def sees_targeting(request: Request, dbs: Databases) -> bool:
    """May the caller read flags' targeting and descriptions? Only an active superuser
    (checked against the database); None without a token, 401 for a bad one."""
    if not request.headers.get("authorization"):
        return False  # the common anonymous read: no token to check
    user = await optional_current_user(request, dbs, await bearer_scheme(request))
    return user is not None and user.is_superuser


@dataclass(frozen=True, slots=True)
class OfrepCaller:
    """Who asks an OFREP evaluation: ``user_id`` (None: anonymous or a service), and
    whether it may evaluate for any ``targetingKey``."""

    user_id: uuid.UUID | None
    any_target: bool


def _service_key_matches(sent: str) -> bool:
    expected = get_feature_flags_settings().ofrep_api_key.get_secret_value()
    # Constant time; an unset key accepts nothing.
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


async def ofrep_caller(request: Request, requested: object) -> OfrepCaller:
    """Who is asking, for the OFREP endpoints (called by them, not as a dependency).

    ``X-API-Key``: a service (401 when it is not the configured key). A Bearer token: its
    user, read from the token alone; only when the body's ``targetingKey`` (``requested``)
    names someone else is the database asked whether the caller is a superuser. Nothing:
    anonymous. A bad token is a 401 (``NotAuthenticated``).
    """
    sent_key = request.headers.get("x-api-key")
    if sent_key is not None:
        if not _service_key_matches(sent_key):
            raise OfrepUnauthorized()
        return OfrepCaller(user_id=None, any_target=True)
    caller = await caller_or_none(request)
    if caller is None:
        return OfrepCaller(user_id=None, any_target=False)
    if requested is None or requested == caller.id:
        return OfrepCaller(user_id=caller.id, any_target=False)
    return OfrepCaller(
        user_id=caller.id, any_target=await sees_targeting(request, databases_of(request))
    )


def require_flag(
    codename: str, *, default_if_missing: bool | Callable[[], bool] = False
) -> Callable[[], Awaitable[None]]:
    """A dependency that raises ``FeatureDisabled`` (404) while the flag is off for everyone.

    It evaluates the anonymous (everyone) view; per-user targeting needs
    ``is_enabled(codename, user)``. ``default_if_missing`` may be a callable, read at
    each check (e.g. a setting).
    """

    async def flag_is_on() -> None:
        default = default_if_missing() if callable(default_if_missing) else default_if_missing
        if not await is_enabled(codename, default_if_missing=default):
            raise FeatureDisabled(codename=codename)

    flag_is_on.__name__ = f"require_flag_{codename}"
    return flag_is_on


__all__ = [
    "FLAG_READER_SECURITY",
    "FlagAdmin",
    "OfrepCaller",
    "flag_reader",
    "ofrep_caller",
    "require_flag",
    "sees_targeting",
]
