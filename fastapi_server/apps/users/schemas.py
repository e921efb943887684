"""Request and response bodies of the users app (field names fixed by the front end)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from fastapi_server.apps.users import passwords
from fastapi_server.apps.users.models import NAME_MAX_LENGTH
from fastapi_server.apps.users.settings import get_users_settings
from fastapi_server.lib.validation import SafeLine

_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
_LINE = "[^\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f]"  # SafeLine's characters
# One line without control characters (a NUL cannot even be stored: 422, not 500);
# stripped before the lengths are checked.
Name = Annotated[
    SafeLine,
    StringConstraints(strip_whitespace=True),
    Field(
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        json_schema_extra={"pattern": f"^{_LINE}*[^\\s{_CONTROL}]{_LINE}*$"},
    ),
]


def _password_schema(schema: dict[str, Any]) -> None:
    schema["minLength"] = get_users_settings().password_min_length
    schema["maxLength"] = passwords.MAX_LENGTH


# The policy (length, character classes, common list) is checked in core, so the front
# end gets a reason code (400); OpenAPI states its lengths. The validation bound here
# only keeps absurd bodies out.
PasswordField = Annotated[
    str,
    Field(max_length=4096, examples=["Correct-Horse-42"], json_schema_extra=_password_schema),
]
# email-validator refuses the special-use domains (RFC 6761 and others): OpenAPI says so.
SPECIAL_USE_DOMAINS = ("arpa", "invalid", "local", "localhost", "onion", "test")
_ANY_CASE = "|".join(
    "".join(f"[{char}{char.upper()}]" for char in domain) for domain in SPECIAL_USE_DOMAINS
)
Email = Annotated[
    EmailStr,
    Field(
        max_length=254,
        json_schema_extra={"not": {"pattern": f"[@.]({_ANY_CASE})\\.?$"}},
        examples=["ada@example.org"],
    ),
]
Token = Annotated[str, Field(min_length=1, max_length=4096)]


class UserCreate(BaseModel):
    email: Email
    password: PasswordField
    first_name: Name = Field(examples=["Ada"])
    last_name: Name = Field(examples=["Lovelace"])


class UserUpdate(BaseModel):
    first_name: Name | None = None
    last_name: Name | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    first_name: str
    last_name: str


class UserOrder(StrEnum):
    """Sort keys of ``GET /users``."""

    CREATED_ON = "created_on"
    EMAIL = "email"


class EmailIn(BaseModel):
    email: Email


class VerificationTokenOut(BaseModel):
    verification_token: str
    registration_code: str | None = Field(
        default=None, description="Only with USERS_RETURN_VERIFICATION_TOKENS=1 (dev/test)."
    )


class VerifyIn(BaseModel):
    token: Token
    registration_code: Annotated[str, Field(max_length=32, examples=["042137"])]
    password: PasswordField | None = Field(
        default=None,
        description="Optional: the account's password from now on. Without it, the "
        "account keeps the password typed at registration, unless the address was "
        "registered again with another one: then it gets none, and a link to set one "
        "is emailed.",
    )


class Verified(BaseModel):
    verified: Literal[True] = True


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 -- the OAuth2 token type
    access_token_expiration: int = Field(description="Lifetime of the access token, seconds.")
    refresh_token_expiration: int = Field(description="Lifetime of the refresh token, seconds.")


class RefreshIn(BaseModel):
    token: Token


class LoggedOut(BaseModel):
    logged_out: Literal[True] = True


class ForgotPasswordOut(BaseModel):
    token_sent: Literal[True] = True
    forgot_password_token: str | None = Field(
        default=None, description="Only with USERS_RETURN_FORGOT_PASSWORD_TOKEN=1 (dev/test)."
    )


class ResetPasswordIn(BaseModel):
    email: Email
    token: Token
    password: PasswordField


class PasswordReset(BaseModel):
    password_reset: Literal[True] = True


class Greeting(BaseModel):
    message: str
