"""All SQL of the notifications app."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


class NotificationsDB:
    """Queries on the notifications app's tables, on the caller's session (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
