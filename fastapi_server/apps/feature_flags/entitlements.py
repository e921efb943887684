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

from collections.abc import Awaitable, Callable

from fastapi import Request

from fastapi_server.apps.feature_flags.core import is_enabled
from fastapi_server.apps.feature_flags.errors import FeatureDisabled
from fastapi_server.apps.users.entitlements import (
    OPTIONAL_BEARER,
    Superuser,
    bearer_scheme,
    caller_or_none,
    optional_current_user,
)
from fastapi_server.resources.database.databases import Databases

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


__all__ = ["FLAG_READER_SECURITY", "FlagAdmin", "flag_reader", "require_flag", "sees_targeting"]
