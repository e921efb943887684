"""A Python client generated from ``/openapi.json`` (openapi-python-client) drives a whole
user journey against the API under uvicorn: a schema change that breaks generated
clients fails here."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastapi_server.tests.helpers.committed import CHEAP_HASHING, bearer_headers, reset
from fastapi_server.tests.helpers.processes import LiveServer
from fastapi_server.tests.helpers.users import STRONG_PASSWORD

PACKAGE = "platform_client"
ADMIN_EMAIL = "client-admin@example.org"


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    """The API under uvicorn, handing out verification codes (as in development)."""
    asyncio.run(bearer_headers(database_url, ADMIN_EMAIL, create=True, superuser=True))
    live = LiveServer({"USERS_RETURN_VERIFICATION_TOKENS": "1", **CHEAP_HASHING})
    try:
        yield live
    finally:
        live.stop()
        asyncio.run(reset(database_url))


@pytest.fixture
def client_package(server: LiveServer, tmp_path: Path) -> Iterator[Any]:
    """The client generated from the served document, imported from a temp dir."""
    (tmp_path / "openapi.json").write_text(
        json.dumps(httpx.get(f"{server.url}/openapi.json").json())
    )
    (tmp_path / "config.yaml").write_text(f"package_name_override: {PACKAGE}\n")
    tool = Path(sys.executable).parent
    result = subprocess.run(
        [
            str(tool / "openapi-python-client"), "generate",
            "--path", str(tmp_path / "openapi.json"), "--config", str(tmp_path / "config.yaml"),
            "--meta", "none", "--output-path", str(tmp_path / PACKAGE), "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": f"{tool}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(package: Any, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


def test_a_generated_client_drives_a_user_journey(server: LiveServer, client_package: Any) -> None:
    users = _module(client_package, "api.users")
    flags = _module(client_package, "api.feature_flags")
    models = _module(client_package, "models")
    for name in (
        "users_register", "users_request_verification_token", "users_verify", "users_login",
        "users_read_me", "users_update_me", "users_refresh_tokens", "users_logout",
    ):  # fmt: skip
        _module(users, name)
    for name in (
        "feature_flags_list_flags",
        "feature_flags_create_flag",
        "feature_flags_toggle_flag",
    ):
        _module(flags, name)
    anonymous = client_package.Client(base_url=server.url, raise_on_unexpected_status=True)

    def logged_in(email: str) -> Any:
        form = models.BodyUsersLogin(username=email, password=STRONG_PASSWORD)
        pair = users.users_login.sync(client=anonymous, body=form)
        assert isinstance(pair, models.TokenPairOut), pair
        return pair

    email = "grace@example.org"
    created = users.users_register.sync(
        client=anonymous,
        body=models.UserCreate(
            email=email, password=STRONG_PASSWORD, first_name="Grace", last_name="Hopper"
        ),
    )
    assert isinstance(created, models.UserRead), created
    code = users.users_request_verification_token.sync(
        client=anonymous, body=models.EmailIn(email=email)
    )
    assert isinstance(code, models.VerificationTokenOut), code
    verified = users.users_verify.sync(
        client=anonymous,
        body=models.VerifyIn(
            token=code.verification_token, registration_code=code.registration_code
        ),
    )
    assert isinstance(verified, models.Verified), verified

    pair = logged_in(email)
    grace = client_package.AuthenticatedClient(
        base_url=server.url, token=pair.access_token, raise_on_unexpected_status=True
    )
    me = users.users_read_me.sync(client=grace)
    assert (me.email, me.first_name) == (email, "Grace")
    patched = users.users_update_me.sync(client=grace, body=models.UserUpdate(first_name="Amazing"))
    assert patched.first_name == "Amazing"
    refused = users.users_refresh_tokens.sync(client=anonymous, body=models.RefreshIn(token="x"))
    assert isinstance(refused, models.Error)
    assert refused.detail.code == "REFRESH_TOKEN_INVALID"
    renewed = users.users_refresh_tokens.sync(
        client=anonymous, body=models.RefreshIn(token=pair.refresh_token)
    )
    assert isinstance(renewed, models.TokenPairOut), renewed

    admin = client_package.AuthenticatedClient(
        base_url=server.url,
        token=logged_in(ADMIN_EMAIL).access_token,
        raise_on_unexpected_status=True,
    )
    new_flag = flags.feature_flags_create_flag.sync(
        client=admin, body=models.FeatureFlagCreate(codename="FF_CLIENT_JOURNEY")
    )
    assert isinstance(new_flag, models.FeatureFlagAdminRead), new_flag
    listed = flags.feature_flags_list_flags.sync(client=admin)
    assert "FF_CLIENT_JOURNEY" in [flag.codename for flag in listed]
    toggled = flags.feature_flags_toggle_flag.sync("FF_CLIENT_JOURNEY", client=admin)
    assert toggled.is_active is True
    forbidden = flags.feature_flags_toggle_flag.sync("FF_CLIENT_JOURNEY", client=grace)
    assert isinstance(forbidden, models.Error)
    assert forbidden.detail.code == "NOT_SUPERUSER"

    grace = client_package.AuthenticatedClient(
        base_url=server.url, token=renewed.access_token, raise_on_unexpected_status=True
    )
    assert isinstance(users.users_logout.sync(client=grace), models.LoggedOut)
    after = users.users_read_me.sync_detailed(client=grace)
    assert after.status_code == 401
    assert after.parsed.detail.code == "NOT_AUTHENTICATED"
