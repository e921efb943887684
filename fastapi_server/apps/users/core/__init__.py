"""The users rules: registration, verification, login, tokens, passwords, administration.

Functions take a ``Databases`` (one transaction, never committed here) and raise the
domain errors of ``errors.py``. The API, the ops scripts and the tests call them alike.
Errors marked ``KeepsChanges`` (failed logins, wrong codes, refresh token reuse) leave
bookkeeping that the caller must commit even though the call failed.

The rules live in ``registration``, ``sessions`` (login and tokens) and ``accounts``
(passwords, profile, ops); ``common`` holds what they share. Callers import them from
here: ``from fastapi_server.apps.users import core``.
"""

from fastapi_server.apps.users.core.accounts import (
    Activation,
    activate_user,
    create_superuser,
    find_active_user,
    forgot_password,
    list_users,
    reset_password,
    set_password,
    update_profile,
)
from fastapi_server.apps.users.core.common import (
    TokenPair,
    VerificationRequest,
    check_deliverable,
    check_password,
    normalize_email,
    pseudonym,
)
from fastapi_server.apps.users.core.registration import (
    CODE_DIGITS,
    register,
    request_verification,
    verification_subject,
    verify,
)
from fastapi_server.apps.users.core.sessions import (
    Caller,
    access_token,
    caller_from_access_token,
    locked_account_count,
    login,
    logout,
    refresh_tokens,
    user_from_access_token,
)

__all__ = [
    "CODE_DIGITS",
    "Activation",
    "Caller",
    "TokenPair",
    "VerificationRequest",
    "access_token",
    "activate_user",
    "caller_from_access_token",
    "check_deliverable",
    "check_password",
    "create_superuser",
    "find_active_user",
    "forgot_password",
    "list_users",
    "locked_account_count",
    "login",
    "logout",
    "normalize_email",
    "pseudonym",
    "refresh_tokens",
    "register",
    "request_verification",
    "reset_password",
    "set_password",
    "update_profile",
    "user_from_access_token",
    "verification_subject",
    "verify",
]
