"""The projects endpoints' behaviour beyond who may call them (``test_entitlements``)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from fastapi_server.apps.projects.models import ProjectMember
from fastapi_server.apps.todos.models import Todo
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.projects import World, add_member, make_world
from fastapi_server.tests.helpers.users import auth_headers, make_user

PROJECTS = "/projects/projects"


def _members(world: World) -> str:
    return f"{PROJECTS}/{world.project_id}/members"


async def _count(dbs: Databases, model: type, **where: object) -> int:
    query = select(func.count()).select_from(model).filter_by(**where)
    return int((await dbs.session.execute(query)).scalar_one())


async def test_create_makes_the_creator_an_admin_member(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    world = await make_world(dbs)
    response = await client.post(PROJECTS, json={"name": "Kitchen"}, headers=world.headers("other"))
    assert response.status_code == 201
    body = response.json()
    assert body["project"]["name"] == "Kitchen"
    assert body["project"]["description"] is None
    assert body["project_member"]["user_id"] == str(world.id("other"))
    assert body["project_member"]["is_admin"] is True
    mine = await client.get(f"{PROJECTS}/user", headers=world.headers("other"))
    assert [p["name"] for p in mine.json()["results"]] == ["Kitchen"]


async def test_users_list_only_their_projects_and_superusers_every_one(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    world = await make_world(dbs)
    other = await client.get(PROJECTS, headers=world.headers("other"))
    assert other.json() == {"total": 0, "results": []}
    member = await client.get(PROJECTS, headers=world.headers("member"))
    assert [p["id"] for p in member.json()["results"]] == [str(world.project_id)]
    everything = await client.get(
        PROJECTS, headers=world.headers("superuser"), params={"page_size": 100}
    )
    assert str(world.project_id) in [p["id"] for p in everything.json()["results"]]
    own = await client.get(f"{PROJECTS}/user", headers=world.headers("superuser"))
    assert own.json()["total"] == 0


async def test_removing_a_member_removes_them_from_that_project_only(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    world = await make_world(dbs)
    second = await client.post(
        PROJECTS, json={"name": "Kitchen"}, headers=world.headers("project_admin")
    )
    second_id = second.json()["project"]["id"]
    member = await dbs.users.get(world.id("member"))
    assert member is not None
    await add_member(dbs, uuid.UUID(second_id), member, admin=False)
    await dbs.session.commit()

    removed = await client.delete(
        f"{_members(world)}/{world.id('member')}", headers=world.headers("project_admin")
    )
    assert removed.status_code == 204
    projects = await client.get(f"{PROJECTS}/user", headers=world.headers("member"))
    assert [p["id"] for p in projects.json()["results"]] == [second_id]
    again = await client.delete(
        f"{_members(world)}/{world.id('member')}", headers=world.headers("project_admin")
    )
    assert again.json()["detail"]["code"] == "PROJECT_MEMBER_NOT_FOUND"


async def test_deleting_a_project_deletes_its_members_and_todos(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    world = await make_world(dbs)
    response = await client.delete(
        f"{PROJECTS}/{world.project_id}", headers=world.headers("project_admin")
    )
    assert response.status_code == 204
    assert await _count(dbs, ProjectMember, project_id=world.project_id) == 0
    assert await _count(dbs, Todo, project_id=world.project_id) == 0
    gone = await client.get(_members(world), headers=world.headers("superuser"))
    assert gone.status_code == 404


async def test_a_project_keeps_its_last_admin(client: httpx.AsyncClient, dbs: Databases) -> None:
    world = await make_world(dbs)
    admin = world.headers("project_admin")
    url = f"{_members(world)}/{world.id('project_admin')}"
    demoted = await client.patch(url, json={"is_admin": False}, headers=admin)
    assert demoted.status_code == 409
    assert demoted.json()["detail"]["code"] == "LAST_PROJECT_ADMIN"
    left = await client.delete(url, headers=admin)
    assert left.status_code == 409
    assert left.json()["detail"]["code"] == "LAST_PROJECT_ADMIN"

    promoted = await client.patch(
        f"{_members(world)}/{world.id('member')}", json={"is_admin": True}, headers=admin
    )
    assert promoted.json()["is_admin"] is True
    assert (await client.delete(url, headers=admin)).status_code == 204  # now it may leave


async def test_adding_members(client: httpx.AsyncClient, dbs: Databases) -> None:
    world = await make_world(dbs)
    await make_user(dbs, email="gone@example.org", active=False)
    await dbs.session.commit()
    admin = world.headers("project_admin")

    added = await client.post(
        _members(world),
        json={"user_email": "NEWCOMER@example.org", "is_admin": True},
        headers=admin,
    )
    assert added.status_code == 201
    assert (added.json()["user_id"], added.json()["is_admin"]) == (str(world.id("newcomer")), True)
    twice = await client.post(
        _members(world), json={"user_email": "newcomer@example.org"}, headers=admin
    )
    assert (twice.status_code, twice.json()["detail"]["code"]) == (
        409,
        "PROJECT_MEMBER_ALREADY_EXISTS",
    )
    for email in ("nobody@example.org", "gone@example.org"):
        missing = await client.post(_members(world), json={"user_email": email}, headers=admin)
        assert (missing.status_code, missing.json()["detail"]["code"]) == (404, "USER_NOT_FOUND")
    listed = await client.get(_members(world), headers=world.headers("member"))
    assert listed.json()["total"] == 4


async def test_bad_input_is_a_clear_4xx(client: httpx.AsyncClient, dbs: Databases) -> None:
    world = await make_world(dbs)
    admin = world.headers("project_admin")
    too_long = await client.post(PROJECTS, json={"name": "x" * 201}, headers=admin)
    assert too_long.status_code == 422
    empty = await client.patch(f"{PROJECTS}/{world.project_id}", json={"name": ""}, headers=admin)
    assert empty.status_code == 422
    null_name = await client.patch(
        f"{PROJECTS}/{world.project_id}", json={"name": None}, headers=admin
    )
    assert null_name.status_code == 422
    for path in (f"{PROJECTS}/not-a-uuid", f"{_members(world)}/42"):
        assert (await client.delete(path, headers=admin)).status_code == 422
    for params in ({"order_by": "owner"}, {"order_direction": "sideways"}, {"page_size": 101}):
        assert (await client.get(PROJECTS, params=params, headers=admin)).status_code == 422


async def test_concurrent_adds_of_the_same_member_give_one_201_and_one_409(
    committed_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async with engine.connect() as connection:
        dbs = Databases(AsyncSession(bind=connection, expire_on_commit=False))
        admin = await make_user(dbs, email="boss@example.org")
        await make_user(dbs, email="twin@example.org")
        await dbs.session.commit()
    headers = auth_headers(admin)
    created = await committed_client.post(PROJECTS, json={"name": "Race"}, headers=headers)
    members = f"{PROJECTS}/{created.json()['project']['id']}/members"
    body = {"user_email": "twin@example.org"}
    responses = await asyncio.gather(
        *(committed_client.post(members, json=body, headers=headers) for _ in range(4))
    )
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409]
    listed = await committed_client.get(members, headers=headers)
    assert listed.json()["total"] == 2
