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
    """Raise ``InsecureSecrets`` in production when a token secret is not a real one,
    when two of them are the same, or when a dev switch would hand secrets to clients."""
    if env != "production":
        return
    bad = settings.insecure_secrets()
    if bad:
        raise InsecureSecrets(
            f"refusing to start with ENV=production: {', '.join(bad)} must be set to a "
            'random value of at least 32 characters (e.g. `python -c "import secrets; '
            'print(secrets.token_urlsafe(48))"`), not empty or a placeholder'
        )
    if settings.shared_secrets():
        raise InsecureSecrets(
            "refusing to start with ENV=production: USERS_JWT_SECRET, "
            "USERS_VERIFICATION_TOKEN_SECRET and USERS_RESET_PASSWORD_TOKEN_SECRET must "
            f"differ from each other ({' = '.join(settings.shared_secrets())})"
        )
    switches = settings.dev_switches_on()
    if switches:
        raise InsecureSecrets(
            f"refusing to start with ENV=production: {', '.join(switches)} must be off "
            "(they hand verification codes or reset tokens to whoever asks)"
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
