"""The entitlement table: every endpoint of projects and todos, times every role.

The world (``helpers.projects``): a project created by ``project_admin``, with ``member``
and ``owner`` as plain members, and a todo of ``owner``'s in it; ``other`` and
``superuser`` belong to nothing. A caller who may not see a project or todo gets 404;
one who sees it but lacks the right gets 403. A failing row shows every role's status.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.projects import ROLES, World, make_world

PROJECT = "/projects/projects/{project}"
TODO = "/todos/todos/{todo}"

# endpoint: (method, path, body, statuses in ROLES order:
#            owner, project_admin, member, other, superuser, anonymous)
TABLE: dict[str, tuple[str, str, dict[str, Any] | None, tuple[int, ...]]] = {
    "list projects": ("GET", "/projects/projects", None, (200, 200, 200, 200, 200, 401)),
    "my projects": ("GET", "/projects/projects/user", None, (200, 200, 200, 200, 200, 401)),
    "create project": (
        "POST",
        "/projects/projects",
        {"name": "Kitchen"},
        (201, 201, 201, 201, 201, 401),
    ),
    "update project": ("PATCH", PROJECT, {"name": "Yard"}, (403, 200, 403, 404, 403, 401)),
    "delete project": ("DELETE", PROJECT, None, (403, 204, 403, 404, 403, 401)),
    "list members": ("GET", PROJECT + "/members", None, (200, 200, 200, 404, 200, 401)),
    "add member": (
        "POST",
        PROJECT + "/members",
        {"user_email": "newcomer@example.org", "is_admin": False},
        (403, 201, 403, 404, 403, 401),
    ),
    "update member": (
        "PATCH",
        PROJECT + "/members/{member}",
        {"is_admin": True},
        (403, 200, 403, 404, 403, 401),
    ),
    "remove member": (
        "DELETE",
        PROJECT + "/members/{member}",
        None,
        (403, 204, 204, 404, 403, 401),
    ),
    "list my todos": ("GET", "/todos/todos", None, (200, 200, 200, 200, 200, 401)),
    "create todo in the project": (
        "POST",
        "/todos/todos",
        {"title": "Weed", "project_id": "{project}"},
        (201, 201, 201, 404, 403, 401),
    ),
    "update todo": ("PATCH", TODO, {"title": "Water"}, (200, 200, 403, 404, 403, 401)),
    "toggle todo": ("POST", TODO + "/toggle", None, (200, 200, 200, 404, 403, 401)),
    "delete todo": ("DELETE", TODO, None, (204, 204, 403, 404, 403, 401)),
    "project todos": ("GET", "/todos/projects/{project}", None, (200, 200, 200, 404, 200, 401)),
}


def _fill(value: Any, world: World) -> Any:
    if isinstance(value, str):
        return value.format(project=world.project_id, todo=world.todo_id, member=world.id("member"))
    if isinstance(value, dict):
        return {key: _fill(item, world) for key, item in value.items()}
    return value


@pytest.mark.parametrize("endpoint", TABLE)
async def test_entitlements(client: httpx.AsyncClient, dbs: Databases, endpoint: str) -> None:
    """One row of the table: each role's request runs on the same world, and what it
    changed is rolled back before the next role's (a savepoint around the request)."""
    world = await make_world(dbs)
    method, path, body, statuses = TABLE[endpoint]
    path, body = _fill(path, world), _fill(body, world)
    headers = {role: world.headers(role) for role in ROLES}
    # The test's connection, under the session's savepoints: SQL of its own, which the
    # session does not track, so the request's savepoint nests inside this one.
    connection = dbs.session.bind
    assert isinstance(connection, AsyncConnection)
    got: dict[str, int] = {}
    for role in ROLES:
        await connection.exec_driver_sql("SAVEPOINT entitlement_probe")
        response = await client.request(method, path, json=body, headers=headers[role])
        await connection.exec_driver_sql("ROLLBACK TO SAVEPOINT entitlement_probe")
        dbs.session.expire_all()
        got[role] = response.status_code
        if response.status_code >= 400:  # the platform's error shape
            assert set(response.json()["detail"]) >= {"code", "message"}, response.text
    assert got == dict(zip(ROLES, statuses, strict=True))


def test_the_table_covers_every_endpoint_of_both_apps() -> None:
    from fastapi_server.apps.projects.api.api import router as projects_router
    from fastapi_server.apps.todos.api.api import router as todos_router

    routes = {
        (method, route.path)  # type: ignore[attr-defined]
        for router in (projects_router, todos_router)
        for route in router.routes
        for method in route.methods  # type: ignore[attr-defined]
    }
    tabled = {
        (method, path.replace("{project}", "{project_id}").replace("{todo}", "{todo_id}"))
        for method, path, _, _ in TABLE.values()
    }
    tabled = {(method, path.replace("{member}", "{member_id}")) for method, path in tabled}
    assert tabled == routes
