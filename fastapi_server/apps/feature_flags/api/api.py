"""HTTP endpoints of the feature flags app."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request, Response

from fastapi_server.apps.feature_flags import core
from fastapi_server.apps.feature_flags.entitlements import (
    FLAG_READER_SECURITY,
    FlagAdmin,
    flag_reader,
    sees_targeting,
)
from fastapi_server.apps.feature_flags.errors import (
    FeatureFlagAlreadyExists,
    FeatureFlagNotFound,
    InvalidFlagVariants,
)
from fastapi_server.apps.feature_flags.schemas import (
    CODENAME_RULE,
    FEATURE_FLAG_LIST,
    FEATURE_FLAG_PUBLIC_LIST,
    Codename,
    FeatureFlagAdminRead,
    FeatureFlagCreate,
    FeatureFlagHistoryRead,
    FeatureFlagPublicRead,
    FeatureFlagRead,
    FeatureFlagUpdate,
    HistoryOrder,
)
from fastapi_server.lib.errors import error_doc, error_responses
from fastapi_server.lib.pagination import OrderDirection, Page, PageRequest
from fastapi_server.resources.http import APIRouter, DBs, databases_of, page_query

router = APIRouter(prefix="/feature-flags", tags=["feature flags"])

CodenamePath = Annotated[
    Codename, Path(description=f"The flag's codename: {CODENAME_RULE}.", examples=["FF_X"])
]


HistoryPageQuery = Annotated[
    PageRequest[HistoryOrder],
    Depends(page_query(HistoryOrder, HistoryOrder.CHANGED_ON, OrderDirection.DESC)),
]

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = error_responses(FeatureFlagNotFound)
ADMIN_ONLY: Responses = {
    401: error_doc("NOT_AUTHENTICATED: missing, invalid or expired access token"),
    403: error_doc("NOT_SUPERUSER: only superusers may do this"),
}


# Evaluation first: routes are matched in order, and a front end asks on every page.
@router.get(
    "/evaluate",
    response_model=dict[str, bool],
    responses={401: error_doc("NOT_AUTHENTICATED: a bad Bearer token")},
    openapi_extra=FLAG_READER_SECURITY,
)
async def evaluate(request: Request) -> Response:
    """Each flag's value for the caller, `{codename: bool}`, so a front end can hide what is
    off. Without a Bearer token: only the flags on for anonymous visitors (active and
    rolled out to 100%), each `true`; a codename left out is off. Served from the
    process's cache, which follows every change within a second."""
    # Takes only the Request and returns a Response: FastAPI has no dependency to solve and
    # nothing to render (the body is made here, once per view of the flags).
    user = await flag_reader(request)
    if user is None:
        return _json(_anonymous_json(core.anonymous_view()))
    return _json(_compact_json(core.evaluate_all(user)))


@router.api_route("/evaluate", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def evaluate_other_methods() -> None:
    """``/feature-flags/evaluate`` is only read: other methods answer 405 here rather
    than reach ``/{codename}`` for a flag that cannot exist ("evaluate" is reserved)."""
    raise HTTPException(405)


def _json(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


def _compact_json(values: Mapping[str, bool]) -> bytes:
    return json.dumps(dict(values), separators=(",", ":")).encode()


class _JsonOfView:
    """A view of the flags as JSON, rendered again only when the view object changes."""

    def __init__(self) -> None:
        self._view: Mapping[str, bool] | None = None
        self._body = b""

    def __call__(self, view: Mapping[str, bool]) -> bytes:
        if view is not self._view:
            self._body = _compact_json(view)
            self._view = view
        return self._body


_anonymous_json = _JsonOfView()


@router.get(
    "",
    response_model=list[FeatureFlagRead] | list[FeatureFlagPublicRead],
    responses={401: error_doc("NOT_AUTHENTICATED: a bad Bearer token")},
    openapi_extra=FLAG_READER_SECURITY,
)
async def list_flags(request: Request) -> Response:
    """Every flag, ordered by codename. Open to anyone as `{codename, label, is_active}`;
    a superuser also gets each flag's description, targeting and timestamps (who changed
    it is in the history)."""
    # Takes only the Request and returns a Response: the list, validated by core, is
    # serialised once by its TypeAdapter rather than validated and serialised again
    # against response_model (which documents it).
    dbs = databases_of(request)
    if await sees_targeting(request, dbs):
        return _json(FEATURE_FLAG_LIST.dump_json(await core.list_flags(dbs)))
    return _json(FEATURE_FLAG_PUBLIC_LIST.dump_json(await core.list_public_flags(dbs)))


@router.get(
    "/{codename}",
    response_model=FeatureFlagRead | FeatureFlagPublicRead,
    responses={**NOT_FOUND, 401: error_doc("NOT_AUTHENTICATED: a bad Bearer token")},
    openapi_extra=FLAG_READER_SECURITY,
)
async def get_flag(
    codename: CodenamePath, request: Request, dbs: DBs
) -> FeatureFlagRead | FeatureFlagPublicRead:
    """One flag, as in the list: `{codename, label, is_active}` for anyone, everything
    but the actors for a superuser."""
    if await sees_targeting(request, dbs):
        return await core.read_flag(dbs, codename)
    return await core.read_public_flag(dbs, codename)


@router.post(
    "",
    status_code=201,
    response_model=FeatureFlagAdminRead,
    responses={**ADMIN_ONLY, **error_responses(FeatureFlagAlreadyExists, InvalidFlagVariants)},
)
async def create_flag(
    flag_in: FeatureFlagCreate, admin: FlagAdmin, dbs: DBs
) -> FeatureFlagAdminRead:
    """Create a flag (off unless `is_active` is true). Superusers only; the answer
    includes `created_by`/`updated_by`."""
    flag = await core.create_flag(dbs, flag_in, actor=admin.email)
    return FeatureFlagAdminRead.model_validate(flag)


@router.patch(
    "/{codename}",
    response_model=FeatureFlagAdminRead,
    responses={**ADMIN_ONLY, **error_responses(FeatureFlagNotFound, InvalidFlagVariants)},
)
async def update_flag(
    codename: CodenamePath, flag_in: FeatureFlagUpdate, admin: FlagAdmin, dbs: DBs
) -> FeatureFlagAdminRead:
    """Change the label, description, `is_active` or targeting (`user_ids`,
    `rollout_percentage`); fields left out keep their value. Superusers only."""
    flag = await core.update_flag(dbs, codename, flag_in, actor=admin.email)
    return FeatureFlagAdminRead.model_validate(flag)


@router.post(
    "/{codename}/toggle",
    response_model=FeatureFlagAdminRead,
    responses={**ADMIN_ONLY, **NOT_FOUND},
)
async def toggle_flag(codename: CodenamePath, admin: FlagAdmin, dbs: DBs) -> FeatureFlagAdminRead:
    """Flip `is_active` and return the flag. Superusers only."""
    flag = await core.toggle_flag(dbs, codename, actor=admin.email)
    return FeatureFlagAdminRead.model_validate(flag)


@router.delete(
    "/{codename}",
    status_code=204,
    response_class=Response,
    responses={**ADMIN_ONLY, **NOT_FOUND},
)
async def delete_flag(codename: CodenamePath, admin: FlagAdmin, dbs: DBs) -> Response:
    """Delete a flag; its history is kept. Code reading it then gets its default.
    Superusers only."""
    await core.delete_flag(dbs, codename, actor=admin.email)
    return Response(status_code=204)


@router.get(
    "/{codename}/history",
    response_model=Page[FeatureFlagHistoryRead],
    responses={**ADMIN_ONLY, **NOT_FOUND},
)
async def flag_history(
    codename: CodenamePath, admin: FlagAdmin, dbs: DBs, page: HistoryPageQuery
) -> Page[FeatureFlagHistoryRead]:
    """Every change of the flag (API, scripts and psql alike), `{total, results}`, newest
    first unless `order_direction=asc`: the values before and after, who made it (user
    email, `script:<os user>`, or the database role) and when. Kept after the flag is
    deleted. Superusers only."""
    rows, total = await core.flag_history(dbs, codename, page)
    return Page(total=total, results=[FeatureFlagHistoryRead.model_validate(row) for row in rows])
