"""The projects app's domain errors (rendered as ``{"detail": {"code": ...}}``)."""

from __future__ import annotations

from fastapi_server.lib.errors import AppError


class ProjectNotFound(AppError):
    """No such project, or one the caller may not see (the same answer: nothing leaks)."""

    code = "PROJECT_NOT_FOUND"
    status_code = 404
    message = "No project has this id."


class NotProjectMember(AppError):
    code = "NOT_PROJECT_MEMBER"
    status_code = 403
    message = "Only members of this project may do this."


class NotProjectAdmin(AppError):
    code = "NOT_PROJECT_ADMIN"
    status_code = 403
    message = "Only admins of this project may do this."


class MemberNotFound(AppError):
    code = "PROJECT_MEMBER_NOT_FOUND"
    status_code = 404
    message = "This user is not a member of this project."


class MemberAlreadyExists(AppError):
    code = "PROJECT_MEMBER_ALREADY_EXISTS"
    status_code = 409
    message = "This user is already a member of this project."


class UserNotFound(AppError):
    code = "USER_NOT_FOUND"
    status_code = 404
    message = "No active user has this email."


class LastProjectAdmin(AppError):
    code = "LAST_PROJECT_ADMIN"
    status_code = 409
    message = "A project keeps at least one admin: make another member an admin first."
