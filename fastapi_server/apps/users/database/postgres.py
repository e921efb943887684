"""All SQL of the users app."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


class UsersDB:
    """Queries on the users app's tables, on the caller's session (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
