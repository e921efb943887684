"""A project with one user of each role, for the projects and todos tests.

``make_world(dbs)`` commits (to the test's savepoint) a project whose ``admin`` created
it, with ``member`` and ``owner`` as plain members, a todo of ``owner``'s in it, an
``other`` user who belongs to nothing, a ``superuser`` who belongs to nothing, and a
``newcomer`` to add. ``world.headers(role)`` gives each role's Authorization header
(none for ``anonymous``), ``world.id(role)`` its user id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi_server.apps.projects import core as projects
from fastapi_server.apps.projects.schemas import ProjectCreate
from fastapi_server.apps.todos import core as todos
from fastapi_server.apps.todos.schemas import TodoCreate
from fastapi_server.apps.users.models import User
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.users import auth_headers, make_user

ROLES = ("owner", "project_admin", "member", "other", "superuser", "anonymous")


@dataclass(frozen=True)
class World:
    """Plain values only (ids, headers): they stay readable after a request rolls back."""

    ids: dict[str, uuid.UUID]
    auth: dict[str, dict[str, str]]
    project_id: uuid.UUID
    todo_id: uuid.UUID

    def id(self, role: str) -> uuid.UUID:
        return self.ids[role]

    def headers(self, role: str) -> dict[str, str]:
        return self.auth.get(role, {})


async def add_member(dbs: Databases, project_id: uuid.UUID, user: User, *, admin: bool) -> None:
    await projects.add_member(dbs, project_id, user.email, is_admin=admin, actor=user.id)


async def make_world(dbs: Databases) -> World:
    """The project, its users and a todo, committed to the test's savepoint."""
    names = ("owner", "admin", "member", "other", "newcomer")
    users = {name: await make_user(dbs, email=f"{name}@example.org") for name in names}
    superuser = await make_user(dbs, email="root@example.org", superuser=True)
    project, _ = await projects.create_project(
        dbs, ProjectCreate(name="Garden"), actor=users["admin"].id
    )
    for name in ("member", "owner"):
        await add_member(dbs, project.id, users[name], admin=False)
    todo = await todos.create_todo(
        dbs, TodoCreate(title="Water the roses", project_id=project.id), actor=users["owner"].id
    )
    await dbs.session.commit()  # a failing request rolls back only its own savepoint
    by_role = {
        "owner": users["owner"],
        "project_admin": users["admin"],
        "member": users["member"],
        "other": users["other"],
        "superuser": superuser,
        "newcomer": users["newcomer"],
    }
    return World(
        ids={role: user.id for role, user in by_role.items()},
        auth={role: auth_headers(user) for role, user in by_role.items()},
        project_id=project.id,
        todo_id=todo.id,
    )
