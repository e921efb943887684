"""All SQL of the feature flags app."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


class FeatureFlagsDB:
    """Queries on the feature flags app's tables, on the caller's session (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
