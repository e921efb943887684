"""Registration cannot hand an account to someone else: registering again changes no
existing account, and verification keeps only a password the verifier typed."""

from __future__ import annotations

import httpx
import pytest

from fastapi_server.apps.users.models import User
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.mail import outbox_for
from fastapi_server.tests.helpers.users import STRONG_PASSWORD
from fastapi_server.tests.users.conftest import UsersEnv
from fastapi_server.tests.users.flows import detail, login, register, request_code, verify

OWNER, ATTACKER = "Owner-Pass-88!", "Attacker-Pass-77"
VICTIM = "victim@example.org"


@pytest.fixture
def dev_codes(users_env: UsersEnv) -> None:
    users_env(RETURN_VERIFICATION_TOKENS="1")


@pytest.mark.usefixtures("dev_codes")
async def test_registering_again_cannot_replace_the_owners_password(
    client: httpx.AsyncClient,
) -> None:
    await register(client, VICTIM, password=OWNER)
    token, code = await request_code(client, VICTIM)
    again = await register(client, VICTIM, password=ATTACKER, first_name="Evil")
    assert again.status_code == 201
    assert (await verify(client, token, code)).status_code == 200  # the owner's code still works
    assert (await login(client, VICTIM, OWNER)).status_code == 200
    assert detail(await login(client, VICTIM, ATTACKER))["code"] == "LOGIN_BAD_CREDENTIALS"


async def test_registering_a_taken_address_answers_like_a_first_registration(
    client: httpx.AsyncClient, ada: User, dbs: Databases
) -> None:
    fresh = await register(client, "new@example.org", first_name="Grace", last_name="Hopper")
    taken = await register(client, "ADA@example.org", password=ATTACKER, first_name="Grace")
    assert taken.status_code == fresh.status_code == 201
    assert set(taken.json()) == set(fresh.json())
    assert taken.json()["id"] != str(ada.id)
    assert (await login(client, "ada@example.org", STRONG_PASSWORD)).status_code == 200
    [notice] = await outbox_for(dbs, "ada@example.org")
    assert notice.template == "registration_attempt"


@pytest.mark.usefixtures("dev_codes")
async def test_a_pre_registered_address_keeps_no_password_its_owner_did_not_type(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    await register(client, VICTIM, password=ATTACKER, first_name="Evil")
    await register(client, VICTIM, password=OWNER, first_name="Vic")  # contested now
    token, code = await request_code(client, VICTIM)
    assert (await verify(client, token, code)).status_code == 200
    assert (await login(client, VICTIM, ATTACKER)).status_code == 400
    assert (await login(client, VICTIM, OWNER)).status_code == 400
    templates = [message.template for message in await outbox_for(dbs, VICTIM)]
    assert templates[-1] == "reset_password"  # the owner sets a password by the link


@pytest.mark.usefixtures("dev_codes")
async def test_verification_sets_the_password_the_verifier_typed(
    client: httpx.AsyncClient,
) -> None:
    await register(client, VICTIM, password=ATTACKER)
    await register(client, VICTIM, password=OWNER)
    token, code = await request_code(client, VICTIM)
    body = {"token": token, "registration_code": code, "password": OWNER}
    assert (await client.post("/auth/verify", json=body)).status_code == 200
    assert (await login(client, VICTIM, OWNER)).status_code == 200
    assert (await login(client, VICTIM, ATTACKER)).status_code == 400


@pytest.mark.usefixtures("dev_codes")
async def test_emails_to_an_unverified_address_carry_no_typed_names(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    await register(client, VICTIM, first_name="Zebulon", last_name="Quixote")
    await request_code(client, VICTIM)
    [message] = await outbox_for(dbs, VICTIM)
    assert message.to_name == ""
    for part in (message.subject, message.body_text, message.body_html):
        assert "Zebulon" not in part
        assert "Quixote" not in part
