"""Who may do what with todos (FastAPI dependencies used by ``api``).

* Every endpoint needs an active user (401 otherwise).
* A todo is visible to its owner and, when it belongs to a project, to whoever may see
  that project (its members, and superusers: ``projects.entitlements``). Anyone else gets
  404 ``TODO_NOT_FOUND``, exactly as if it did not exist.
* Editing or deleting a todo: its owner, or an admin of its project (403
  ``NOT_TODO_EDITOR`` for others who can see it).
* Completing (toggling) a todo: its owner, or any member of its project (403
  ``NOT_TODO_MEMBER`` for others who can see it: superusers act as any member would).
* Creating a todo in a project, or listing a project's todos: the project must be
  visible (404) and, to create, the caller a member (403).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from fastapi_server.apps.projects import core as projects
from fastapi_server.apps.projects.entitlements import require_member, visible_access
from fastapi_server.apps.todos import core
from fastapi_server.apps.todos.core import TodoAccess
from fastapi_server.apps.todos.errors import NotTodoEditor, NotTodoMember, TodoNotFound
from fastapi_server.apps.users.entitlements import CurrentUser
from fastapi_server.apps.users.models import User
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.http import DBs

TodoId = Annotated[uuid.UUID, Path(description="The todo's id.")]


def _is_owner(access: TodoAccess, user: User) -> bool:
    return access.todo.owner == user.id


async def todo_reader(todo_id: TodoId, user: CurrentUser, dbs: DBs) -> TodoAccess:
    """The todo, if the caller may see it; 404 otherwise."""
    access = await core.access(dbs, todo_id, user.id)
    if access is None:
        raise TodoNotFound()
    if _is_owner(access, user):
        return access
    if access.project is None or not (access.project.is_member or user.is_superuser):
        raise TodoNotFound()
    return access


async def todo_editor(todo_id: TodoId, user: CurrentUser, dbs: DBs) -> TodoAccess:
    """The todo, if the caller owns it or administers its project; 404 if they may not
    see it, 403 otherwise."""
    access = await todo_reader(todo_id, user, dbs)
    if _is_owner(access, user) or (access.project is not None and access.project.is_admin):
        return access
    raise NotTodoEditor()


async def todo_member(todo_id: TodoId, user: CurrentUser, dbs: DBs) -> TodoAccess:
    """The todo, if the caller owns it or is a member of its project; 404 if they may not
    see it, 403 otherwise."""
    access = await todo_reader(todo_id, user, dbs)
    if _is_owner(access, user) or (access.project is not None and access.project.is_member):
        return access
    raise NotTodoMember()


async def check_project_member(dbs: Databases, project_id: uuid.UUID | None, user: User) -> None:
    """Nothing for ``None`` (no project); otherwise 404 unless the caller may see the
    project, 403 unless they are a member (to put a todo in it)."""
    if project_id is not None:
        require_member(visible_access(await projects.access(dbs, project_id, user.id), user))


TodoReader = Annotated[TodoAccess, Depends(todo_reader)]
TodoEditor = Annotated[TodoAccess, Depends(todo_editor)]
TodoMember = Annotated[TodoAccess, Depends(todo_member)]
