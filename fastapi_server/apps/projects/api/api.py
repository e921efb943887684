"""HTTP endpoints of the projects app (the paths of the system it replaces)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Response

from fastapi_server.apps.projects import core
from fastapi_server.apps.projects.entitlements import (
    MemberId,
    MemberRemover,
    ProjectAdmin,
    ProjectReader,
)
from fastapi_server.apps.projects.errors import (
    LastProjectAdmin,
    MemberAlreadyExists,
    MemberNotFound,
    NotProjectAdmin,
    NotProjectMember,
    ProjectNotFound,
    UserNotFound,
)
from fastapi_server.apps.projects.schemas import (
    MemberCreate,
    MemberOrder,
    MemberUpdate,
    ProjectCreate,
    ProjectCreated,
    ProjectMemberRead,
    ProjectOrder,
    ProjectRead,
    ProjectUpdate,
)
from fastapi_server.apps.users.entitlements import CurrentUser
from fastapi_server.lib.errors import error_doc, error_responses
from fastapi_server.lib.pagination import Page, PageRequest
from fastapi_server.resources.http import APIRouter, DBs, page_query

router = APIRouter(prefix="/projects", tags=["projects"])

ProjectPageQuery = Annotated[
    PageRequest[ProjectOrder], Depends(page_query(ProjectOrder, ProjectOrder.CREATED_ON))
]
MemberPageQuery = Annotated[
    PageRequest[MemberOrder], Depends(page_query(MemberOrder, MemberOrder.CREATED_ON))
]

Responses = dict[int | str, dict[str, Any]]
SIGNED_IN: Responses = {401: error_doc("NOT_AUTHENTICATED")}
# A project the caller may not see is answered 404, as if it did not exist.
VISIBLE: Responses = {**SIGNED_IN, **error_responses(ProjectNotFound)}
ADMIN: Responses = {**SIGNED_IN, **error_responses(ProjectNotFound, NotProjectAdmin)}


def _page(projects: Any, total: int) -> Page[ProjectRead]:
    return Page(total=total, results=[ProjectRead.model_validate(p) for p in projects])


@router.get("/projects", response_model=Page[ProjectRead], responses=SIGNED_IN)
async def list_projects(user: CurrentUser, dbs: DBs, page: ProjectPageQuery) -> Page[ProjectRead]:
    """The projects the caller can see: every project for a superuser, the caller's own
    otherwise."""
    if user.is_superuser:
        return _page(*await core.list_all(dbs, page))
    return _page(*await core.list_of_member(dbs, user.id, page))


@router.get("/projects/user", response_model=Page[ProjectRead], responses=SIGNED_IN)
async def list_my_projects(
    user: CurrentUser, dbs: DBs, page: ProjectPageQuery
) -> Page[ProjectRead]:
    """The projects the caller is a member of (superusers included)."""
    return _page(*await core.list_of_member(dbs, user.id, page))


@router.post("/projects", status_code=201, response_model=ProjectCreated, responses=SIGNED_IN)
async def create_project(project_in: ProjectCreate, user: CurrentUser, dbs: DBs) -> ProjectCreated:
    """Create a project; the caller becomes its first admin member."""
    project, member = await core.create_project(dbs, project_in, actor=user.id)
    return ProjectCreated(
        project=ProjectRead.model_validate(project),
        project_member=ProjectMemberRead.model_validate(member),
    )


@router.patch("/projects/{project_id}", response_model=ProjectRead, responses=ADMIN)
async def update_project(
    project_in: ProjectUpdate, access: ProjectAdmin, user: CurrentUser, dbs: DBs
) -> ProjectRead:
    """Rename the project or change its description (admins)."""
    project = await core.update_project(dbs, access.project_id, project_in, actor=user.id)
    return ProjectRead.model_validate(project)


@router.delete("/projects/{project_id}", status_code=204, response_class=Response, responses=ADMIN)
async def delete_project(access: ProjectAdmin, dbs: DBs) -> Response:
    """Delete the project with its memberships and its todos (admins)."""
    await core.delete_project(dbs, access.project_id)
    return Response(status_code=204)


@router.get(
    "/projects/{project_id}/members",
    response_model=Page[ProjectMemberRead],
    responses=VISIBLE,
)
async def list_members(
    access: ProjectReader, dbs: DBs, page: MemberPageQuery
) -> Page[ProjectMemberRead]:
    """The project's members (for its members, and superusers)."""
    members, total = await core.list_members(dbs, access.project_id, page)
    return Page(total=total, results=[ProjectMemberRead.model_validate(m) for m in members])


@router.post(
    "/projects/{project_id}/members",
    status_code=201,
    response_model=ProjectMemberRead,
    responses={
        **SIGNED_IN,
        **error_responses(ProjectNotFound, UserNotFound, NotProjectAdmin, MemberAlreadyExists),
    },
)
async def add_member(
    member_in: MemberCreate, access: ProjectAdmin, user: CurrentUser, dbs: DBs
) -> ProjectMemberRead:
    """Add an active user, by email, as a member or an admin (admins)."""
    member = await core.add_member(
        dbs,
        access.project_id,
        str(member_in.user_email),
        is_admin=member_in.is_admin,
        actor=user.id,
    )
    return ProjectMemberRead.model_validate(member)


@router.patch(
    "/projects/{project_id}/members/{member_id}",
    response_model=ProjectMemberRead,
    responses={
        **SIGNED_IN,
        **error_responses(ProjectNotFound, MemberNotFound, NotProjectAdmin, LastProjectAdmin),
    },
)
async def update_member(
    member_id: MemberId,
    member_in: MemberUpdate,
    access: ProjectAdmin,
    user: CurrentUser,
    dbs: DBs,
) -> ProjectMemberRead:
    """Make a member an admin, or an admin a plain member (admins)."""
    member = await core.set_admin(
        dbs, access.project_id, member_id, is_admin=member_in.is_admin, actor=user.id
    )
    return ProjectMemberRead.model_validate(member)


@router.delete(
    "/projects/{project_id}/members/{member_id}",
    status_code=204,
    response_class=Response,
    responses={
        **SIGNED_IN,
        **error_responses(
            ProjectNotFound,
            MemberNotFound,
            NotProjectAdmin,  # removing someone else
            NotProjectMember,  # leaving a project one only sees as a superuser
            LastProjectAdmin,
        ),
    },
)
async def remove_member(member_id: MemberId, access: MemberRemover, dbs: DBs) -> Response:
    """Remove a member from this project only (admins), or leave it (any member)."""
    await core.remove_member(dbs, access.project_id, member_id)
    return Response(status_code=204)
