"""Start-up of the users app: refuse placeholder secrets in production, load what
requests need (the dummy hash, the common-passwords list) off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fastapi_server.apps.users import passwords
from fastapi_server.apps.users.settings import UsersSettings, get_users_settings
from fastapi_server.config import Settings


class InsecureSecrets(RuntimeError):
    """Production was asked to sign tokens with an empty, short or placeholder secret."""


def check_secrets(env: str, settings: UsersSettings) -> None:
    """Raise ``InsecureSecrets`` in production when a token secret is not a real one."""
    bad = settings.insecure_secrets()
    if env == "production" and bad:
        raise InsecureSecrets(
            f"refusing to start with ENV=production: {', '.join(bad)} must be set to a "
            'random value of at least 32 characters (e.g. `python -c "import secrets; '
            'print(secrets.token_urlsafe(48))"`), not empty or a placeholder'
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Check the secrets; compute the dummy hash (unknown-email logins) and read the
    common-passwords file in a thread, so no request does either on the event loop."""
    settings: Settings = app.state.settings
    users_settings = get_users_settings()
    check_secrets(settings.env, users_settings)
    await asyncio.to_thread(passwords.dummy_hash)
    await asyncio.to_thread(passwords.common_passwords, users_settings.common_passwords_file)
    yield
