"""The one place that hands out every app's data layer, all on one session."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_server.apps.feature_flags.database.postgres import FeatureFlagsDB
from fastapi_server.apps.notifications.database.postgres import NotificationsDB
from fastapi_server.apps.projects.database.postgres import ProjectsDB
from fastapi_server.apps.todos.database.postgres import TodosDB
from fastapi_server.apps.users.database.postgres import UsersDB
from fastapi_server.resources.database.rate_limits import RateLimitsDB


class Databases:
    """Each app's DB class, built lazily on the same session (so one transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @cached_property
    def users(self) -> UsersDB:
        return UsersDB(self.session)

    @cached_property
    def feature_flags(self) -> FeatureFlagsDB:
        return FeatureFlagsDB(self.session)

    @cached_property
    def notifications(self) -> NotificationsDB:
        return NotificationsDB(self.session)

    @cached_property
    def projects(self) -> ProjectsDB:
        return ProjectsDB(self.session)

    @cached_property
    def todos(self) -> TodosDB:
        return TodosDB(self.session)

    @cached_property
    def rate_limits(self) -> RateLimitsDB:
        return RateLimitsDB(self.session)
