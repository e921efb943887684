"""All SQL of the feature flags app (on the caller's session; never commits).

``created_by``/``updated_by``/``updated_on`` and the history rows are written by
triggers (migration 0003); ``set_actor`` tells them who is acting in this transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_server.apps.feature_flags.models import FeatureFlag, FeatureFlagHistory
from fastapi_server.apps.feature_flags.schemas import HistoryOrder
from fastapi_server.lib.pagination import PageRequest
from fastapi_server.resources.database.pages import fetch_page
from fastapi_server.resources.database.postgres import rows

# What anyone may read of a flag (schemas.FeatureFlagPublicRead), and what superusers read
# in the list (schemas.FeatureFlagRead: not the actors). These reads only serialise, so
# they are Core selects returning plain rows (``rows``): no identity map or
# instrumentation on the hot GET /feature-flags.
PUBLIC_KEYS = ("codename", "label", "is_active")
READ_KEYS = (
    "codename",
    "label",
    "description",
    "is_active",
    "user_ids",
    "rollout_percentage",
    "flag_type",
    "variants",
    "default_variant",
    "off_variant",
    "weights",
    "created_on",
    "updated_on",
)
_flags = cast(Table, FeatureFlag.__table__)


def _reads(keys: tuple[str, ...]) -> tuple[Select[Any], Select[Any]]:
    read = select(*(_flags.c[key] for key in keys))
    return read.order_by(_flags.c.codename), read.where(_flags.c.codename == bindparam("codename"))


# (every flag, one flag), by whether the targeting is included
_READS = {False: _reads(PUBLIC_KEYS), True: _reads(READ_KEYS)}


class FeatureFlagsDB:
    """Queries on the feature flags app's tables, on the caller's session (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def set_actor(self, actor: str) -> None:
        """Record ``actor`` in the audit columns and history for the rest of the transaction."""
        await self.session.execute(
            text("SELECT set_config('app.actor', :actor, true)"), {"actor": actor}
        )

    async def get(self, codename: str) -> FeatureFlag | None:
        return await self.session.get(FeatureFlag, codename, populate_existing=True)

    async def read_all(self, *, targeting: bool = False) -> list[dict[str, Any]]:
        """Every flag's ``READ_KEYS`` (``PUBLIC_KEYS`` without ``targeting``), ordered by
        codename, as dicts."""
        return [dict(row) for row in await rows(self.session, _READS[targeting][0])]

    async def read_one(self, codename: str, *, targeting: bool = False) -> dict[str, Any] | None:
        """One flag's ``READ_KEYS`` (``PUBLIC_KEYS`` without ``targeting``) as a dict; None
        when there is no such flag."""
        found = await rows(self.session, _READS[targeting][1], {"codename": codename})
        return dict(found[0]) if found else None

    async def insert(self, values: dict[str, Any]) -> FeatureFlag | None:
        """Insert a flag; None (and nothing written) when the codename is taken."""
        statement = (
            insert(FeatureFlag)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[FeatureFlag.codename])
            .returning(FeatureFlag)
        )
        result = await self.session.scalars(
            statement, execution_options={"populate_existing": True}
        )
        return result.one_or_none()

    async def update(self, codename: str, values: dict[str, Any]) -> FeatureFlag | None:
        """Change the given columns; None when there is no such flag."""
        statement = (
            update(FeatureFlag)
            .where(FeatureFlag.codename == codename)
            .values(**values)
            .returning(FeatureFlag)
        )
        result = await self.session.scalars(
            statement, execution_options={"populate_existing": True}
        )
        return result.one_or_none()

    async def toggle(self, codename: str) -> FeatureFlag | None:
        """Flip ``is_active`` in one statement (two concurrent toggles flip twice)."""
        return await self.update(codename, {"is_active": ~FeatureFlag.is_active})

    async def delete(self, codename: str) -> bool:
        """Delete the flag (its history stays); False when there was none."""
        result = await self.session.execute(
            delete(FeatureFlag)
            .where(FeatureFlag.codename == codename)
            .returning(FeatureFlag.codename)
        )
        return result.scalar_one_or_none() is not None

    async def history(
        self, codename: str, request: PageRequest[HistoryOrder]
    ) -> tuple[Sequence[FeatureFlagHistory], int]:
        """One page of the flag's changes in the requested order, and how many there are."""
        query = select(FeatureFlagHistory).where(FeatureFlagHistory.codename == codename)
        keys = (FeatureFlagHistory.changed_on, FeatureFlagHistory.id)
        return await fetch_page(self.session, query, request, keys)
