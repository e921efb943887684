"""The todos app's domain errors (rendered as ``{"detail": {"code": ...}}``)."""

from __future__ import annotations

from fastapi_server.lib.errors import AppError


class TodoNotFound(AppError):
    """No such todo, or one the caller may not see (the same answer: nothing leaks)."""

    code = "TODO_NOT_FOUND"
    status_code = 404
    message = "No todo has this id."


class NotTodoEditor(AppError):
    code = "NOT_TODO_EDITOR"
    status_code = 403
    message = "Only the todo's owner or an admin of its project may do this."


class NotTodoMember(AppError):
    code = "NOT_TODO_MEMBER"
    status_code = 403
    message = "Only the todo's owner or a member of its project may do this."
