"""The todos rules: a caller's todos, a project's todos, editing and completing them.

Functions take a ``Databases`` and the acting user's id, and raise the domain errors of
``errors.py``; they never commit. Who may call which is decided in ``entitlements.py``
(the API) before they run. Projects are reached through the projects app's ``core``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi_server.apps.projects import core as projects
from fastapi_server.apps.projects.core import ProjectAccess
from fastapi_server.apps.todos.errors import TodoNotFound
from fastapi_server.apps.todos.models import Todo
from fastapi_server.apps.todos.schemas import TodoCreate, TodoOrder, TodoRead, TodoUpdate
from fastapi_server.lib.pagination import Page, PageRequest
from fastapi_server.resources.database.databases import Databases


@dataclass(frozen=True)
class TodoAccess:
    """A todo and, when it belongs to a project, the caller's access to that project."""

    todo: Todo
    project: ProjectAccess | None


async def access(dbs: Databases, todo_id: uuid.UUID, user_id: uuid.UUID) -> TodoAccess | None:
    """The todo and ``user_id``'s access to its project; None when there is no such todo."""
    todo = await dbs.todos.get(todo_id)
    if todo is None:
        return None
    if todo.project_id is None:
        return TodoAccess(todo, None)
    return TodoAccess(todo, await projects.access(dbs, todo.project_id, user_id))


async def list_of_owner(
    dbs: Databases, owner: uuid.UUID, request: PageRequest[TodoOrder]
) -> Page[TodoRead]:
    """One page of ``owner``'s todos, and how many there are."""
    return _page(*await dbs.todos.page_of_owner(owner, request))


async def list_of_project(
    dbs: Databases, project_id: uuid.UUID, request: PageRequest[TodoOrder]
) -> Page[TodoRead]:
    """One page of the project's todos, and how many there are."""
    return _page(*await dbs.todos.page_of_project(project_id, request))


def _page(rows: list[dict[str, Any]], total: int) -> Page[TodoRead]:
    return Page(total=total, results=[TodoRead.model_validate(row) for row in rows])


async def create_todo(dbs: Databases, todo_in: TodoCreate, *, actor: uuid.UUID) -> Todo:
    """A new todo owned by ``actor`` (in ``todo_in.project_id``, if given)."""
    return await dbs.todos.insert(
        title=todo_in.title,
        description=todo_in.description,
        project_id=todo_in.project_id,
        owner=actor,
        created_by=actor,
        updated_by=actor,
    )


async def update_todo(
    dbs: Databases, todo_id: uuid.UUID, todo_in: TodoUpdate, *, actor: uuid.UUID
) -> Todo:
    """Change what ``todo_in`` carries."""
    changes = todo_in.changes()
    if changes:
        todo = await dbs.todos.update(todo_id, {**changes, "updated_by": actor})
    else:
        todo = await dbs.todos.get(todo_id)
    if todo is None:
        raise TodoNotFound()
    return todo


async def toggle_todo(dbs: Databases, todo_id: uuid.UUID, *, actor: uuid.UUID) -> Todo:
    """Mark the todo done by ``actor``, or open again if it was done."""
    todo = await dbs.todos.toggle(todo_id, actor)
    if todo is None:
        raise TodoNotFound()
    return todo


async def delete_todo(dbs: Databases, todo_id: uuid.UUID) -> None:
    """Delete the todo."""
    if not await dbs.todos.delete(todo_id):
        raise TodoNotFound()
