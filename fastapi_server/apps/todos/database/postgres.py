"""All SQL of the todos app (on the caller's session; never commits)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Select, Table, Uuid, case, delete, func, literal, null, update
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_server.apps.todos.models import Todo
from fastapi_server.apps.todos.schemas import TodoOrder
from fastapi_server.lib.pagination import PageRequest
from fastapi_server.resources.database.pages import page_select, read_page

_todos = cast(Table, Todo.__table__)


def _page(column: str, request: PageRequest[TodoOrder]) -> Select[Any]:
    """The statement of a page of the todos whose ``column`` is a value, in the request's
    order (``request.order_by`` is a TodoOrder: a column name)."""
    return page_select(_todos, column, request.order_by.value, request.descending)


class TodosDB:
    """Queries on the todos table, on the caller's session (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, todo_id: uuid.UUID) -> Todo | None:
        return await self.session.get(Todo, todo_id, populate_existing=True)

    async def page_of_owner(
        self, owner: uuid.UUID, request: PageRequest[TodoOrder]
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of ``owner``'s todos (any project) as dicts, and how many there are
        (one statement, plain rows: GET /todos/todos is a hot path)."""
        return await read_page(self.session, _page("owner", request), owner, request)

    async def page_of_project(
        self, project_id: uuid.UUID, request: PageRequest[TodoOrder]
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the project's todos as dicts, and how many there are."""
        return await read_page(self.session, _page("project_id", request), project_id, request)

    async def insert(self, **values: Any) -> Todo:
        todo = Todo(**values)
        self.session.add(todo)
        await self.session.flush()
        await self.session.refresh(todo)  # created_on, updated_on from the database
        return todo

    async def update(self, todo_id: uuid.UUID, values: dict[str, Any]) -> Todo | None:
        """Change the given columns; None when there is no such todo."""
        result = await self.session.scalars(
            update(Todo).where(Todo.id == todo_id).values(**values).returning(Todo),
            execution_options={"populate_existing": True},
        )
        return result.one_or_none()

    async def toggle(self, todo_id: uuid.UUID, actor: uuid.UUID) -> Todo | None:
        """Mark the todo done by ``actor`` now, or open again if it was done, in one
        statement (two concurrent toggles toggle twice); None when there is no such todo."""
        done = Todo.completed_on.is_not(None)
        statement = (
            update(Todo)
            .where(Todo.id == todo_id)
            .values(
                completed_on=case((done, null()), else_=func.now()),
                completed_by=case((done, null()), else_=literal(actor, Uuid)),
                updated_by=actor,
            )
            .returning(Todo)
        )
        result = await self.session.scalars(
            statement, execution_options={"populate_existing": True}
        )
        return result.one_or_none()

    async def delete(self, todo_id: uuid.UUID) -> bool:
        """Delete the todo; False when there was none."""
        result = await self.session.execute(
            delete(Todo).where(Todo.id == todo_id).returning(Todo.id)
        )
        return result.scalar_one_or_none() is not None
