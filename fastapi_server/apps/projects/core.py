"""The projects rules: creating projects, managing members, keeping an admin.

Functions take a ``Databases`` and the acting user's id, and raise the domain errors of
``errors.py``; they never commit. Who may call which is decided in ``entitlements.py``
(the API) before they run: these functions assume the caller is allowed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi_server.apps.projects.errors import (
    LastProjectAdmin,
    MemberAlreadyExists,
    MemberNotFound,
    ProjectNotFound,
    UserNotFound,
)
from fastapi_server.apps.projects.models import Project, ProjectMember
from fastapi_server.apps.projects.schemas import (
    MemberOrder,
    ProjectCreate,
    ProjectOrder,
    ProjectUpdate,
)
from fastapi_server.apps.users import core as users
from fastapi_server.lib.pagination import PageRequest
from fastapi_server.resources.database.databases import Databases


@dataclass(frozen=True, slots=True)
class ProjectAccess:
    """A project's id and what the caller is in it."""

    project_id: uuid.UUID
    is_member: bool
    is_admin: bool


async def access(dbs: Databases, project_id: uuid.UUID, user_id: uuid.UUID) -> ProjectAccess | None:
    """The project and ``user_id``'s place in it; None when there is no such project."""
    found = await dbs.projects.access(project_id, user_id)
    return None if found is None else ProjectAccess(project_id, *found)


async def is_member(dbs: Databases, project_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Whether ``user_id`` belongs to the project."""
    return await dbs.projects.membership(project_id, user_id) is not None


async def list_all(
    dbs: Databases, request: PageRequest[ProjectOrder]
) -> tuple[Sequence[Project], int]:
    """One page of every project, and how many there are."""
    return await dbs.projects.page_all(request)


async def list_of_member(
    dbs: Databases, user_id: uuid.UUID, request: PageRequest[ProjectOrder]
) -> tuple[Sequence[Project], int]:
    """One page of the projects ``user_id`` belongs to, and how many there are."""
    return await dbs.projects.page_of_member(user_id, request)


async def create_project(
    dbs: Databases, project_in: ProjectCreate, *, actor: uuid.UUID
) -> tuple[Project, ProjectMember]:
    """A new project with ``actor`` as its first admin member."""
    project = await dbs.projects.insert(
        name=project_in.name,
        description=project_in.description,
        created_by=actor,
        updated_by=actor,
    )
    member = await dbs.projects.add_member(
        project_id=project.id, user_id=actor, is_admin=True, created_by=actor, updated_by=actor
    )
    assert member is not None  # the project is new: nobody else can be in it
    return project, member


async def update_project(
    dbs: Databases, project_id: uuid.UUID, project_in: ProjectUpdate, *, actor: uuid.UUID
) -> Project:
    """Change what ``project_in`` carries."""
    changes = project_in.changes()
    if changes:
        project = await dbs.projects.update(project_id, {**changes, "updated_by": actor})
    else:
        project = await dbs.projects.get(project_id)
    if project is None:
        raise ProjectNotFound()
    return project


async def delete_project(dbs: Databases, project_id: uuid.UUID) -> None:
    """Delete the project with its memberships and todos (one transaction)."""
    await dbs.projects.delete(project_id)


async def list_members(
    dbs: Databases, project_id: uuid.UUID, request: PageRequest[MemberOrder]
) -> tuple[Sequence[ProjectMember], int]:
    """One page of the project's members, and how many there are."""
    return await dbs.projects.page_members(project_id, request)


async def add_member(
    dbs: Databases, project_id: uuid.UUID, email: str, *, is_admin: bool, actor: uuid.UUID
) -> ProjectMember:
    """Add the active user with ``email``: ``UserNotFound`` when there is none,
    ``MemberAlreadyExists`` when they belong already (even through a concurrent add)."""
    user = await users.find_active_user(dbs, email)
    if user is None:
        raise UserNotFound()
    member = await dbs.projects.add_member(
        project_id=project_id,
        user_id=user.id,
        is_admin=is_admin,
        created_by=actor,
        updated_by=actor,
    )
    if member is None:
        raise MemberAlreadyExists()
    return member


async def set_admin(
    dbs: Databases,
    project_id: uuid.UUID,
    member_id: uuid.UUID,
    *,
    is_admin: bool,
    actor: uuid.UUID,
) -> ProjectMember:
    """Make the member an admin or a plain member; ``LastProjectAdmin`` rather than
    leave the project without an admin."""
    await dbs.projects.get(project_id, for_update=True)  # membership changes take turns
    member = await _member(dbs, project_id, member_id)
    if member.is_admin and not is_admin:
        await _keep_an_admin(dbs, project_id)
    updated = await dbs.projects.update_member(
        project_id, member_id, {"is_admin": is_admin, "updated_by": actor}
    )
    assert updated is not None  # the project's row lock keeps the membership
    return updated


async def remove_member(dbs: Databases, project_id: uuid.UUID, member_id: uuid.UUID) -> None:
    """End the membership in this project only; ``LastProjectAdmin`` rather than leave
    the project without an admin."""
    await dbs.projects.get(project_id, for_update=True)  # membership changes take turns
    member = await _member(dbs, project_id, member_id)
    if member.is_admin:
        await _keep_an_admin(dbs, project_id)
    await dbs.projects.remove_member(project_id, member_id)


async def _member(dbs: Databases, project_id: uuid.UUID, member_id: uuid.UUID) -> ProjectMember:
    member = await dbs.projects.membership(project_id, member_id)
    if member is None:
        raise MemberNotFound()
    return member


async def _keep_an_admin(dbs: Databases, project_id: uuid.UUID) -> None:
    """Raise ``LastProjectAdmin`` when the project has a single admin (about to go)."""
    if await dbs.projects.count_admins(project_id) <= 1:
        raise LastProjectAdmin()
