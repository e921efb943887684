"""The one place that hands out every app's data layer, all on one session."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_server.apps.feature_flags.database.postgres import FeatureFlagsDB
from fastapi_server.apps.notifications.database.postgres import NotificationsDB
from fastapi_server.apps.projects.database.postgres import ProjectsDB
from fastapi_server.apps.todos.database.postgres import TodosDB
from fastapi_server.apps.users.database.postgres import UsersDB
from fastapi_server.resources.database.postgres import Reader


class Databases:
    """Each app's DB class, built lazily on the same session (so one transaction).

    ``reader`` runs plain-row reads on that session's transaction, unless a read-only
    scope hands its own (``Database.reads``).
    """

    def __init__(self, session: AsyncSession, reader: Reader | None = None) -> None:
        self.session = session
        self.reader = reader or Reader(session)

    @cached_property
    def users(self) -> UsersDB:
        return UsersDB(self.session, self.reader)

    @cached_property
    def feature_flags(self) -> FeatureFlagsDB:
        return FeatureFlagsDB(self.session, self.reader)

    @cached_property
    def notifications(self) -> NotificationsDB:
        return NotificationsDB(self.session)

    @cached_property
    def projects(self) -> ProjectsDB:
        return ProjectsDB(self.session)

    @cached_property
    def todos(self) -> TodosDB:
        return TodosDB(self.session, self.reader)
