"""Start-up of the users app: refuse placeholder secrets in production, warm hashing."""

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
    """Check the secrets, and compute the dummy hash (unknown-email logins) off the loop."""
    settings: Settings = app.state.settings
    check_secrets(settings.env, get_users_settings())
    await asyncio.to_thread(passwords.dummy_hash)
    yield
