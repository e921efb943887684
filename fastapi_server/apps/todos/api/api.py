"""HTTP endpoints of the todos app (the paths of the system it replaces)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Response

from fastapi_server.apps.projects.entitlements import ProjectReader
from fastapi_server.apps.projects.errors import NotProjectMember, ProjectNotFound
from fastapi_server.apps.todos import core
from fastapi_server.apps.todos.entitlements import TodoEditor, TodoMember, check_project_member
from fastapi_server.apps.todos.errors import NotTodoEditor, NotTodoMember, TodoNotFound
from fastapi_server.apps.todos.schemas import TodoCreate, TodoOrder, TodoRead, TodoUpdate
from fastapi_server.apps.users.entitlements import CurrentUser
from fastapi_server.lib.errors import error_doc, error_responses
from fastapi_server.lib.pagination import Page, PageRequest
from fastapi_server.resources.http import APIRouter, DBs, page_query

router = APIRouter(prefix="/todos", tags=["todos"])

TodoPageQuery = Annotated[
    PageRequest[TodoOrder], Depends(page_query(TodoOrder, TodoOrder.CREATED_ON))
]

Responses = dict[int | str, dict[str, Any]]
SIGNED_IN: Responses = {401: error_doc("NOT_AUTHENTICATED")}
# A todo (or project) the caller may not see is answered 404, as if it did not exist.


@router.get("/todos", response_model=Page[TodoRead], responses=SIGNED_IN)
async def list_my_todos(user: CurrentUser, dbs: DBs, page: TodoPageQuery) -> Page[TodoRead]:
    """The caller's own todos (in any project or none), ordered by `created_on` (default)
    or `title`, then by id."""
    return await core.list_of_owner(dbs, user.id, page)


@router.post(
    "/todos",
    status_code=201,
    response_model=TodoRead,
    responses={**SIGNED_IN, **error_responses(ProjectNotFound, NotProjectMember)},
)
async def create_todo(todo_in: TodoCreate, user: CurrentUser, dbs: DBs) -> TodoRead:
    """Create a todo of the caller's; with `project_id`, shared with that project, of
    which the caller must be a member."""
    await check_project_member(dbs, todo_in.project_id, user)
    return TodoRead.model_validate(await core.create_todo(dbs, todo_in, actor=user.id))


@router.patch(
    "/todos/{todo_id}",
    response_model=TodoRead,
    responses={**SIGNED_IN, **error_responses(TodoNotFound, NotTodoEditor)},
)
async def update_todo(
    todo_in: TodoUpdate, access: TodoEditor, user: CurrentUser, dbs: DBs
) -> TodoRead:
    """Change the title or description (the owner, or an admin of the todo's project)."""
    todo = await core.update_todo(dbs, access.todo.id, todo_in, actor=user.id)
    return TodoRead.model_validate(todo)


@router.post(
    "/todos/{todo_id}/toggle",
    response_model=TodoRead,
    responses={**SIGNED_IN, **error_responses(TodoNotFound, NotTodoMember)},
)
async def toggle_todo(access: TodoMember, user: CurrentUser, dbs: DBs) -> TodoRead:
    """Mark the todo done (`completed_on`, `completed_by` the caller), or open again if
    it was done (the owner, or any member of the todo's project)."""
    todo = await core.toggle_todo(dbs, access.todo.id, actor=user.id)
    return TodoRead.model_validate(todo)


@router.delete(
    "/todos/{todo_id}",
    status_code=204,
    response_class=Response,
    responses={**SIGNED_IN, **error_responses(TodoNotFound, NotTodoEditor)},
)
async def delete_todo(access: TodoEditor, dbs: DBs) -> Response:
    """Delete the todo (the owner, or an admin of the todo's project)."""
    await core.delete_todo(dbs, access.todo.id)
    return Response(status_code=204)


@router.get(
    "/projects/{project_id}",
    response_model=Page[TodoRead],
    responses={**SIGNED_IN, **error_responses(ProjectNotFound)},
)
async def list_project_todos(
    access: ProjectReader, dbs: DBs, page: TodoPageQuery
) -> Page[TodoRead]:
    """The project's todos, whoever owns them (for its members, and superusers), ordered
    by `created_on` (default) or `title`, then by id."""
    return await core.list_of_project(dbs, access.project_id, page)
