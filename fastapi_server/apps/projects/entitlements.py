"""Who may do what with projects (FastAPI dependencies and plain functions used by ``api``).

* Every endpoint needs an active user (401 otherwise).
* A project is visible to its members, and to superusers: anyone else gets 404
  ``PROJECT_NOT_FOUND``, exactly as if it did not exist.
* Reading a project's members needs it visible; changing the project or its members
  needs its admin (403 ``NOT_PROJECT_ADMIN`` for a member, or a superuser, who is not).
* Superusers may read every project but act as any member would: on a project they do
  not belong to, they may read and nothing more.
* A member may always leave (remove their own membership).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from fastapi_server.apps.projects import core
from fastapi_server.apps.projects.core import ProjectAccess
from fastapi_server.apps.projects.errors import NotProjectAdmin, NotProjectMember, ProjectNotFound
from fastapi_server.apps.users.entitlements import CurrentUser
from fastapi_server.apps.users.models import User
from fastapi_server.resources.http import DBs

ProjectId = Annotated[uuid.UUID, Path(description="The project's id.")]
MemberId = Annotated[uuid.UUID, Path(description="The member's user id.")]


def visible_access(access: ProjectAccess | None, user: User) -> ProjectAccess:
    """``access`` if ``user`` may see the project (a member, or a superuser);
    ``ProjectNotFound`` otherwise, as if it did not exist."""
    if access is None or not (access.is_member or user.is_superuser):
        raise ProjectNotFound()
    return access


def require_member(access: ProjectAccess) -> ProjectAccess:
    """``access`` if its user is a member; ``NotProjectMember`` (403) otherwise."""
    if not access.is_member:
        raise NotProjectMember()
    return access


def require_admin(access: ProjectAccess) -> ProjectAccess:
    """``access`` if its user is an admin of the project; ``NotProjectAdmin`` (403)."""
    if not access.is_admin:
        raise NotProjectAdmin()
    return access


async def project_reader(project_id: ProjectId, user: CurrentUser, dbs: DBs) -> ProjectAccess:
    """The project, if the caller may see it; 404 otherwise."""
    return visible_access(await core.access(dbs, project_id, user.id), user)


async def project_admin(project_id: ProjectId, user: CurrentUser, dbs: DBs) -> ProjectAccess:
    """The project, if the caller is one of its admins; 404 if they may not see it, 403
    if they may but are not an admin."""
    return require_admin(await project_reader(project_id, user, dbs))


async def member_remover(
    project_id: ProjectId, member_id: MemberId, user: CurrentUser, dbs: DBs
) -> ProjectAccess:
    """The project, if the caller may remove ``member_id``: an admin, or the member
    themself (leaving); 404 if they may not see it, 403 otherwise."""
    access = await project_reader(project_id, user, dbs)
    if member_id == user.id:
        return require_member(access)
    return require_admin(access)


ProjectReader = Annotated[ProjectAccess, Depends(project_reader)]
ProjectAdmin = Annotated[ProjectAccess, Depends(project_admin)]
MemberRemover = Annotated[ProjectAccess, Depends(member_remover)]
