"""The feature flags rules: evaluation from the in-process cache, and flag management.

Reading flags in code::

    if await is_enabled("FF_NEW_CHECKOUT", user):   # a dict lookup, never a query
        ...
    colour = await get_value("FF_BUTTON_COLOUR", "#000", user)  # a typed flag's variant

(or through OpenFeature's ``openfeature.api.get_client()``: ``openfeature.py``).

A route guarded by a flag uses ``entitlements.require_flag`` instead (an HTTP dependency).

Management functions take a ``Databases`` and the acting person (``actor``: a user's
email, or ``script:<os user>``), which the database triggers record in the history.
They never commit; each process's cache picks the change up from PostgreSQL's NOTIFY
once the caller's transaction commits.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from fastapi_server.apps.feature_flags.cache import Resolution, flag_cache
from fastapi_server.apps.feature_flags.errors import (
    FeatureFlagAlreadyExists,
    FeatureFlagNotFound,
    InvalidFlagVariants,
)
from fastapi_server.apps.feature_flags.models import FeatureFlag, FeatureFlagHistory
from fastapi_server.apps.feature_flags.schemas import (
    FEATURE_FLAG_LIST,
    FEATURE_FLAG_PUBLIC_LIST,
    VARIANT_FIELDS,
    FeatureFlagCreate,
    FeatureFlagPublicRead,
    FeatureFlagRead,
    FeatureFlagUpdate,
    HistoryOrder,
    check_variants,
)
from fastapi_server.lib.pagination import PageRequest
from fastapi_server.resources.database.databases import Databases

T = TypeVar("T")


class HasId(Protocol):
    """Anything with a user id (the users app's ``User`` fits)."""

    @property
    def id(self) -> uuid.UUID: ...


async def is_enabled(
    codename: str, user: HasId | None = None, *, default_if_missing: bool = False
) -> bool:
    """Is the flag on for ``user`` (None: anonymous)? Served from the process's cache.

    A flag missing from a loaded cache answers ``default_if_missing``; before the cache
    was ever loaded (database unreachable since start-up) every flag is off.
    """
    rule = flag_cache.rules.get(codename)
    if rule is None:
        return default_if_missing if flag_cache.loaded else False
    return rule.evaluate(None if user is None else user.id)


async def get_value(codename: str, default: T, user: HasId | None = None) -> T:
    """The flag's value for ``user`` (None: anonymous), served from the process's cache.

    ``default`` when the flag is missing (or the cache was never loaded), or when the
    flag's values are not of ``default``'s type (a string flag read with an int default).
    An object flag's value is the caller's own copy.
    """
    rule = flag_cache.rules.get(codename)
    if rule is None:
        return default
    value = rule.resolve(None if user is None else user.id).value
    if type(value) is not type(default):
        return default
    if type(value) is dict:
        return copy.deepcopy(value)
    return value


def resolve(codename: str, key: uuid.UUID | str | None) -> Resolution | None:
    """The value, variant and reason of the flag for the caller ``key`` (a user id, or a
    server-side targeting key; None: anonymous), or None for a flag the cache lacks."""
    rule = flag_cache.rules.get(codename)
    return None if rule is None else rule.resolve(key)


def cache_loaded() -> bool:
    """Has the process's flag cache been loaded at least once?"""
    return flag_cache.loaded


def evaluate_all(user: HasId | None = None) -> dict[str, bool]:
    """Every known flag's value for ``user``, from the cache; for None (anonymous), only
    the flags that are on (``anonymous_view``)."""
    if user is None:
        return dict(flag_cache.anonymous_view())
    return {codename: rule.evaluate(user.id) for codename, rule in flag_cache.rules.items()}


def anonymous_view() -> Mapping[str, bool]:
    """The flags that are on for anonymous callers (each ``True``), read-only; the same
    object until a flag changes (callers may key their own caches on it).

    Flags that are off are left out: an anonymous caller learns nothing of a flag it does
    not get, and reads a missing codename as off."""
    return flag_cache.anonymous_view()


async def list_flags(dbs: Databases) -> list[FeatureFlagRead]:
    """Every flag with its targeting, ordered by codename (one query, no ORM objects)."""
    return FEATURE_FLAG_LIST.validate_python(await dbs.feature_flags.read_all(targeting=True))


async def list_public_flags(dbs: Databases) -> list[FeatureFlagPublicRead]:
    """Every flag as anyone may read it (codename, label, is_active), ordered by codename."""
    rows = await dbs.feature_flags.read_all(targeting=False)
    return FEATURE_FLAG_PUBLIC_LIST.validate_python(rows)


async def read_flag(dbs: Databases, codename: str) -> FeatureFlagRead:
    """The flag with its targeting, or ``FeatureFlagNotFound``."""
    row = await dbs.feature_flags.read_one(codename, targeting=True)
    if row is None:
        raise FeatureFlagNotFound(codename=codename)
    return FeatureFlagRead.model_validate(row)


async def read_public_flag(dbs: Databases, codename: str) -> FeatureFlagPublicRead:
    """The flag as anyone may read it, or ``FeatureFlagNotFound``."""
    row = await dbs.feature_flags.read_one(codename, targeting=False)
    if row is None:
        raise FeatureFlagNotFound(codename=codename)
    return FeatureFlagPublicRead.model_validate(row)


async def get_flag(dbs: Databases, codename: str) -> FeatureFlag:
    """The flag (with its actors), or ``FeatureFlagNotFound``."""
    flag = await dbs.feature_flags.get(codename)
    if flag is None:
        raise FeatureFlagNotFound(codename=codename)
    return flag


async def create_flag(dbs: Databases, flag_in: FeatureFlagCreate, *, actor: str) -> FeatureFlag:
    """Create a flag; ``FeatureFlagAlreadyExists`` when the codename is taken,
    ``InvalidFlagVariants`` when its variant fields do not fit together."""
    values = flag_in.model_dump()
    try:
        check_variants(values)
    except ValueError as exc:
        raise InvalidFlagVariants(message=str(exc)) from None
    await dbs.feature_flags.set_actor(actor)
    values["user_ids"] = list(dict.fromkeys(values["user_ids"]))
    flag = await dbs.feature_flags.insert(values)
    if flag is None:
        raise FeatureFlagAlreadyExists(codename=flag_in.codename)
    return flag


async def update_flag(
    dbs: Databases, codename: str, flag_in: FeatureFlagUpdate, *, actor: str
) -> FeatureFlag:
    """Change what ``flag_in`` carries; ``FeatureFlagNotFound`` when there is no such flag."""
    changes = flag_in.changes()
    if not changes:
        return await get_flag(dbs, codename)
    if changes.keys() & {*VARIANT_FIELDS, "rollout_percentage"}:
        await _check_merged_variants(dbs, codename, changes)
    if "user_ids" in changes:
        changes["user_ids"] = list(dict.fromkeys(changes["user_ids"]))
    await dbs.feature_flags.set_actor(actor)
    flag = await dbs.feature_flags.update(codename, changes)
    if flag is None:
        raise FeatureFlagNotFound(codename=codename)
    return flag


async def _check_merged_variants(dbs: Databases, codename: str, changes: dict[str, Any]) -> None:
    """``InvalidFlagVariants`` when ``changes`` would make the flag inconsistent, said
    before the database's trigger refuses it."""
    flag = await get_flag(dbs, codename)
    merged = {name: getattr(flag, name) for name in (*VARIANT_FIELDS, "rollout_percentage")}
    merged.update(changes)
    try:
        check_variants(merged)
    except ValueError as exc:
        raise InvalidFlagVariants(message=str(exc)) from None


async def toggle_flag(dbs: Databases, codename: str, *, actor: str) -> FeatureFlag:
    """Flip ``is_active``; ``FeatureFlagNotFound`` when there is no such flag."""
    await dbs.feature_flags.set_actor(actor)
    flag = await dbs.feature_flags.toggle(codename)
    if flag is None:
        raise FeatureFlagNotFound(codename=codename)
    return flag


async def delete_flag(dbs: Databases, codename: str, *, actor: str) -> None:
    """Delete the flag (its history is kept); ``FeatureFlagNotFound`` when there is none."""
    await dbs.feature_flags.set_actor(actor)
    if not await dbs.feature_flags.delete(codename):
        raise FeatureFlagNotFound(codename=codename)


async def flag_history(
    dbs: Databases, codename: str, request: PageRequest[HistoryOrder]
) -> tuple[Sequence[FeatureFlagHistory], int]:
    """One page of the flag's changes (kept after deletion) and how many there are;
    ``FeatureFlagNotFound`` when the flag neither exists nor ever existed."""
    rows, total = await dbs.feature_flags.history(codename, request)
    if not total and await dbs.feature_flags.get(codename) is None:
        raise FeatureFlagNotFound(codename=codename)
    return rows, total


# Flags the code reads, created by the bootstrap when missing (never overwritten).
DEFAULT_FLAGS = (
    FeatureFlagCreate(
        codename="FF_ENABLE_REGISTRATION",
        label="Enable registration",
        description="POST /register accepts new accounts; off: it answers 404.",
        is_active=True,
    ),
)
SEED_ACTOR = "init:bootstrap"


async def seed_default_flags(dbs: Databases) -> None:
    """Insert each of ``DEFAULT_FLAGS`` that is missing; keep existing rows as they are."""
    await dbs.feature_flags.set_actor(SEED_ACTOR)
    for flag_in in DEFAULT_FLAGS:
        await dbs.feature_flags.insert(flag_in.model_dump())
