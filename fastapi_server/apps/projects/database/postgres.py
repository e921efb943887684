"""All SQL of the projects app (on the caller's session; never commits)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_server.apps.projects.models import Project, ProjectMember
from fastapi_server.apps.projects.schemas import MemberOrder, ProjectOrder
from fastapi_server.lib.pagination import PageRequest
from fastapi_server.resources.database.pages import fetch_page
from fastapi_server.resources.database.postgres import rows

PROJECT_KEYS = {ProjectOrder.CREATED_ON: Project.created_on, ProjectOrder.NAME: Project.name}
MEMBER_KEYS = {MemberOrder.CREATED_ON: ProjectMember.created_on}

_projects = cast(Table, Project.__table__)
_members = cast(Table, ProjectMember.__table__)
# Built once (a statement costs more to build than to run): the project's id and the
# caller's is_admin, NULL when the caller is not a member.
_ACCESS = (
    select(_projects.c.id, _members.c.is_admin)
    .select_from(
        _projects.outerjoin(
            _members,
            and_(
                _members.c.project_id == _projects.c.id, _members.c.user_id == bindparam("user_id")
            ),
        )
    )
    .where(_projects.c.id == bindparam("project_id"))
)


class ProjectsDB:
    """Queries on projects and project_members, on the caller's session (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, project_id: uuid.UUID, *, for_update: bool = False) -> Project | None:
        """The project; ``for_update`` locks its row until the transaction ends (membership
        changes of one project take turns, so the last admin cannot be lost in a race)."""
        return await self.session.get(
            Project, project_id, with_for_update=for_update, populate_existing=True
        )

    async def access(self, project_id: uuid.UUID, user_id: uuid.UUID) -> tuple[bool, bool] | None:
        """Whether ``user_id`` is a member of the project and whether an admin, in one
        light read (no ORM objects); None when there is no such project."""
        found = await rows(self.session, _ACCESS, {"project_id": project_id, "user_id": user_id})
        if not found:
            return None
        is_admin = found[0]["is_admin"]  # NULL: no membership row
        return is_admin is not None, bool(is_admin)

    async def membership(self, project_id: uuid.UUID, user_id: uuid.UUID) -> ProjectMember | None:
        return await self.session.get(ProjectMember, (project_id, user_id), populate_existing=True)

    async def page_all(self, request: PageRequest[ProjectOrder]) -> tuple[Sequence[Project], int]:
        """Every project, one page of them, and how many there are."""
        keys = (PROJECT_KEYS[request.order_by], Project.id)
        return await fetch_page(self.session, select(Project), request, keys)

    async def page_of_member(
        self, user_id: uuid.UUID, request: PageRequest[ProjectOrder]
    ) -> tuple[Sequence[Project], int]:
        """The projects ``user_id`` is a member of, one page of them, and how many."""
        query = select(Project).join(
            ProjectMember,
            (ProjectMember.project_id == Project.id) & (ProjectMember.user_id == user_id),
        )
        keys = (PROJECT_KEYS[request.order_by], Project.id)
        return await fetch_page(self.session, query, request, keys)

    async def page_members(
        self, project_id: uuid.UUID, request: PageRequest[MemberOrder]
    ) -> tuple[Sequence[ProjectMember], int]:
        """The project's members, one page of them, and how many."""
        query = select(ProjectMember).where(ProjectMember.project_id == project_id)
        keys = (MEMBER_KEYS[request.order_by], ProjectMember.user_id)
        return await fetch_page(self.session, query, request, keys)

    async def insert(self, **values: Any) -> Project:
        project = Project(**values)
        self.session.add(project)
        await self.session.flush()
        await self.session.refresh(project)  # created_on, updated_on from the database
        return project

    async def update(self, project_id: uuid.UUID, values: dict[str, Any]) -> Project | None:
        """Change the given columns; None when there is no such project."""
        result = await self.session.scalars(
            update(Project).where(Project.id == project_id).values(**values).returning(Project),
            execution_options={"populate_existing": True},
        )
        return result.one_or_none()

    async def delete(self, project_id: uuid.UUID) -> None:
        """Delete the project; its memberships and todos go with it (``ON DELETE CASCADE``)."""
        await self.session.execute(delete(Project).where(Project.id == project_id))

    async def add_member(self, **values: Any) -> ProjectMember | None:
        """Insert a membership; None (and nothing written) when it exists already, even
        one added a moment ago by a concurrent transaction."""
        result = await self.session.scalars(
            insert(ProjectMember)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=[ProjectMember.project_id, ProjectMember.user_id]
            )
            .returning(ProjectMember),
            execution_options={"populate_existing": True},
        )
        return result.one_or_none()

    async def update_member(
        self, project_id: uuid.UUID, user_id: uuid.UUID, values: dict[str, Any]
    ) -> ProjectMember | None:
        result = await self.session.scalars(
            update(ProjectMember)
            .where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
            .values(**values)
            .returning(ProjectMember),
            execution_options={"populate_existing": True},
        )
        return result.one_or_none()

    async def remove_member(self, project_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Delete this one membership; False when there was none."""
        result = await self.session.execute(
            delete(ProjectMember)
            .where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
            .returning(ProjectMember.user_id)
        )
        return result.scalar_one_or_none() is not None

    async def count_admins(self, project_id: uuid.UUID) -> int:
        result = await self.session.execute(
            select(func.count()).where(
                ProjectMember.project_id == project_id, ProjectMember.is_admin
            )
        )
        return int(result.scalar_one())
