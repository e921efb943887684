"""The todos endpoints' behaviour beyond who may call them (``test_entitlements``)."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from fastapi_server.apps.todos.models import Todo
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.projects import make_world
from fastapi_server.tests.helpers.users import auth_headers, make_user

TODOS = "/todos/todos"


async def test_create_edit_toggle_and_delete_own_todo(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    world = await make_world(dbs)
    headers = world.headers("other")
    created = await client.post(TODOS, json={"title": "Buy seeds"}, headers=headers)
    assert created.status_code == 201
    todo = created.json()
    assert (todo["owner"], todo["project_id"], todo["completed_on"]) == (
        str(world.id("other")),
        None,
        None,
    )
    url = f"{TODOS}/{todo['id']}"
    patched = await client.patch(url, json={"description": "Tomatoes"}, headers=headers)
    assert (patched.json()["title"], patched.json()["description"]) == ("Buy seeds", "Tomatoes")

    done = await client.post(f"{url}/toggle", headers=headers)
    assert done.json()["completed_on"] is not None
    assert done.json()["completed_by"] == str(world.id("other"))
    reopened = await client.post(f"{url}/toggle", headers=headers)
    assert (reopened.json()["completed_on"], reopened.json()["completed_by"]) == (None, None)

    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await client.patch(url, json={"title": "x"}, headers=headers)).status_code == 404


async def test_a_member_completes_another_members_todo(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    world = await make_world(dbs)
    done = await client.post(f"{TODOS}/{world.todo_id}/toggle", headers=world.headers("member"))
    assert done.json()["completed_by"] == str(world.id("member"))
    listed = await client.get(f"/todos/projects/{world.project_id}", headers=world.headers("owner"))
    assert [t["completed_by"] for t in listed.json()["results"]] == [str(world.id("member"))]


async def test_lists_are_paginated_in_a_total_order(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    """Twelve todos made in one transaction share created_on: the id decides, so every
    todo is on exactly one page, in both orders and directions."""
    world = await make_world(dbs)
    headers = world.headers("owner")
    titles = [f"todo {number % 4}" for number in range(11)]  # repeated titles: ties too
    for title in titles:
        body = {"title": title, "project_id": str(world.project_id)}
        assert (await client.post(TODOS, json=body, headers=headers)).status_code == 201
    for url in (TODOS, f"/todos/projects/{world.project_id}"):
        for order_by in ("created_on", "title"):
            for direction in ("asc", "desc"):
                seen: list[tuple[str, str]] = []
                for page in (1, 2, 3):
                    params: dict[str, str | int] = {
                        "page": page,
                        "page_size": 5,
                        "order_by": order_by,
                        "order_direction": direction,
                    }
                    response = await client.get(url, params=params, headers=headers)
                    assert response.json()["total"] == 12
                    seen += [(t["title"], t["id"]) for t in response.json()["results"]]
                assert len(set(seen)) == 12
                if order_by == "title":
                    assert seen == sorted(seen, reverse=direction == "desc")
                else:
                    ids = [todo_id for _, todo_id in seen]
                    assert ids == sorted(ids, reverse=direction == "desc")


async def test_a_project_the_caller_cannot_see_writes_nothing(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    world = await make_world(dbs)
    for project_id in (world.project_id, uuid.uuid4()):
        body = {"title": "Sneak in", "project_id": str(project_id)}
        response = await client.post(TODOS, json=body, headers=world.headers("other"))
        assert (response.status_code, response.json()["detail"]["code"]) == (
            404,
            "PROJECT_NOT_FOUND",
        )
    count = await dbs.session.execute(
        select(func.count()).select_from(Todo).where(Todo.owner == world.id("other"))
    )
    assert count.scalar_one() == 0


async def test_bad_input_is_a_clear_4xx(client: httpx.AsyncClient, dbs: Databases) -> None:
    world = await make_world(dbs)
    headers = world.headers("owner")
    for body in ({"title": ""}, {"title": "x" * 501}, {"title": "a\x00b"}, {"project_id": "7"}):
        response = await client.post(TODOS, json={"title": "ok", **body}, headers=headers)
        assert response.status_code == 422, body
    assert (await client.patch(f"{TODOS}/nope", json={}, headers=headers)).status_code == 422
    for params in ({"order_by": "owner"}, {"page": 0}, {"page_size": 12}):
        assert (await client.get(TODOS, params=params, headers=headers)).status_code == 422


async def test_pages_read_on_a_get_scope_hold_the_page_and_the_total(
    committed_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """A GET reads on its own read-only scope (the test client above shares the test's
    transaction instead): the page, the total and a page past the end."""
    async with engine.connect() as connection:
        dbs = Databases(AsyncSession(bind=connection, expire_on_commit=False))
        owner = await make_user(dbs, email="lister@example.org")
        await dbs.session.commit()
    headers = auth_headers(owner)
    for number in range(7):
        body = {"title": f"todo {number}"}
        assert (await committed_client.post(TODOS, json=body, headers=headers)).status_code == 201
    pages = []
    for page in (1, 2, 3):
        params = {"page": page, "page_size": 5, "order_by": "title"}
        response = await committed_client.get(TODOS, params=params, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["total"] == 7
        pages.append([todo["title"] for todo in response.json()["results"]])
    assert pages == [[f"todo {n}" for n in range(5)], ["todo 5", "todo 6"], []]
