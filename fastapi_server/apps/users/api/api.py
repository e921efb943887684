"""HTTP endpoints of the users app (paths and fields are fixed by the web front end)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from fastapi_server.apps.feature_flags.entitlements import require_flag
from fastapi_server.apps.users import core
from fastapi_server.apps.users.entitlements import CurrentUser, Superuser, within_rate_limits
from fastapi_server.apps.users.schemas import (
    EmailIn,
    ForgotPasswordOut,
    Greeting,
    LoggedOut,
    PasswordReset,
    RefreshIn,
    ResetPasswordIn,
    TokenPairOut,
    UserCreate,
    UserOrder,
    UserRead,
    UserUpdate,
    VerificationTokenOut,
    Verified,
    VerifyIn,
)
from fastapi_server.apps.users.settings import get_users_settings
from fastapi_server.lib.errors import error_doc
from fastapi_server.lib.pagination import Page, PageRequest
from fastapi_server.resources.http import APIRouter, DBs, page_query

router = APIRouter(tags=["users"])

REGISTRATION_FLAG = "FF_ENABLE_REGISTRATION"
_RATE_LIMITED = error_doc("RATE_LIMITED: too many requests from this IP or for this email")
_HASHING_BUSY = error_doc("HASHING_BUSY: every password hashing turn is taken; `retry_after`")
UserPageQuery = Annotated[
    PageRequest[UserOrder], Depends(page_query(UserOrder, UserOrder.CREATED_ON))
]


# The profile first: routes are matched in order, and GET /users/user is the most requested.
@router.get("/users/user", response_model=UserRead, responses={401: error_doc("NOT_AUTHENTICATED")})
async def read_me(user: CurrentUser) -> UserRead:
    """The caller's account."""
    return UserRead.model_validate(user)


@router.patch(
    "/users/user", response_model=UserRead, responses={401: error_doc("NOT_AUTHENTICATED")}
)
async def update_me(user_in: UserUpdate, user: CurrentUser, dbs: DBs) -> UserRead:
    """Change the caller's own names."""
    updated = await core.update_profile(
        dbs, user, first_name=user_in.first_name, last_name=user_in.last_name
    )
    return UserRead.model_validate(updated)


@router.post(
    "/register",
    status_code=201,
    response_model=UserRead,
    dependencies=[
        Depends(
            require_flag(
                REGISTRATION_FLAG,
                default_if_missing=lambda: get_users_settings().registration_default,
            )
        )
    ],
    responses={
        400: error_doc("REGISTER_INVALID_PASSWORD with `reason`, or REGISTER_INVALID_EMAIL"),
        404: error_doc("FEATURE_DISABLED: registration is switched off (FF_ENABLE_REGISTRATION)"),
        429: _RATE_LIMITED,
        503: _HASHING_BUSY,
    },
)
async def register(user_in: UserCreate, dbs: DBs, request: Request) -> UserRead:
    """Create an account (unverified). An email that has an account already gets the
    same answer (a fresh id) and nothing changes: its owner is emailed instead."""
    await within_rate_limits(request, "register", str(user_in.email))
    user = await core.register(
        dbs,
        email=str(user_in.email),
        password=user_in.password,
        first_name=user_in.first_name,
        last_name=user_in.last_name,
    )
    return UserRead.model_validate(user)


@router.post(
    "/auth/request-verification-token",
    response_model=VerificationTokenOut,
    response_model_exclude_none=True,
    responses={
        429: error_doc("VERIFY_TOO_MANY_REQUESTS: too many codes this hour, or RATE_LIMITED")
    },
)
async def request_verification_token(
    email_in: EmailIn, dbs: DBs, request: Request
) -> VerificationTokenOut:
    """Email a 6-digit registration code (valid 10 minutes) and return the token that
    goes with it. The answer looks the same for any email."""
    await within_rate_limits(request, "request-verification", str(email_in.email))
    issued = await core.request_verification(dbs, str(email_in.email))
    code = issued.registration_code if get_users_settings().return_verification_tokens else None
    return VerificationTokenOut(
        verification_token=issued.verification_token, registration_code=code
    )


@router.post(
    "/auth/verify",
    response_model=Verified,
    responses={
        400: error_doc(
            "VERIFY_USER_BAD_TOKEN (wrong, expired or used code or token; `reason`), "
            "VERIFY_USER_ALREADY_VERIFIED, or VERIFY_INVALID_PASSWORD with `reason`"
        ),
        429: _RATE_LIMITED,
        503: _HASHING_BUSY,
    },
)
async def verify(verify_in: VerifyIn, dbs: DBs, request: Request) -> Verified:
    """Confirm the email with the token and the emailed code; a welcome email follows.
    With `password`, the account gets that password."""
    await within_rate_limits(request, "verify", core.verification_subject(verify_in.token))
    await core.verify(
        dbs, token=verify_in.token, code=verify_in.registration_code, password=verify_in.password
    )
    return Verified()


_LOGIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: error_doc("LOGIN_BAD_CREDENTIALS or LOGIN_USER_NOT_VERIFIED"),
    429: error_doc("LOGIN_USER_LOCKED: too many failures; `retry_after` seconds; or RATE_LIMITED"),
    503: _HASHING_BUSY,
}


# RFC 6749 5.1: an answer carrying tokens is never stored by a cache.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def _login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    dbs: DBs,
    request: Request,
    response: Response,
) -> TokenPairOut:
    await within_rate_limits(request, "login", form.username)
    pair = await core.login(dbs, email=form.username, password=form.password)
    response.headers.update(_NO_STORE)
    return TokenPairOut(**pair.__dict__)


router.add_api_route(
    "/login",
    _login,
    methods=["POST"],
    response_model=TokenPairOut,
    responses=_LOGIN_RESPONSES,
    summary="Log in",
    description="OAuth2 password form: `username` is the email. Answers an access and a "
    "refresh token. Five failures in a row lock the account for a while.",
)
router.add_api_route(
    "/users/login",
    _login,
    methods=["POST"],
    response_model=TokenPairOut,
    responses=_LOGIN_RESPONSES,
    summary="Log in (alias of /login)",
    operation_id="users_login_alias",
)


@router.post(
    "/auth/refresh-tokens",
    response_model=TokenPairOut,
    responses={401: error_doc("REFRESH_TOKEN_INVALID")},
)
async def refresh_tokens(refresh_in: RefreshIn, dbs: DBs, response: Response) -> TokenPairOut:
    """Exchange a refresh token for a new pair. Each refresh token works once: presented
    again within 10 seconds (two tabs) it gets a fresh pair, later it revokes every
    token of that login and logs the user out everywhere."""
    pair = await core.refresh_tokens(dbs, refresh_in.token)
    response.headers.update(_NO_STORE)
    return TokenPairOut(**pair.__dict__)


@router.post(
    "/auth/logout", response_model=LoggedOut, responses={401: error_doc("NOT_AUTHENTICATED")}
)
async def logout(user: CurrentUser, dbs: DBs) -> LoggedOut:
    """Sign out everywhere: the caller's refresh and access tokens stop working."""
    await core.logout(dbs, user)
    return LoggedOut()


@router.post(
    "/auth/forgot-password",
    response_model=ForgotPasswordOut,
    response_model_exclude_none=True,
    responses={429: _RATE_LIMITED},
)
async def forgot_password(email_in: EmailIn, dbs: DBs, request: Request) -> ForgotPasswordOut:
    """Email a password reset link (valid one hour). The answer is the same for any email."""
    await within_rate_limits(request, "forgot-password", str(email_in.email))
    token = await core.forgot_password(dbs, str(email_in.email))
    show = get_users_settings().return_forgot_password_token
    return ForgotPasswordOut(forgot_password_token=token if show else None)


@router.post(
    "/auth/reset-password",
    response_model=PasswordReset,
    responses={
        400: error_doc(
            "RESET_PASSWORD_BAD_TOKEN, or RESET_PASSWORD_INVALID_PASSWORD with `reason`"
        ),
        503: _HASHING_BUSY,
    },
)
async def reset_password(reset_in: ResetPasswordIn, dbs: DBs) -> PasswordReset:
    """Set a new password with the emailed token; every earlier token stops working."""
    await core.reset_password(
        dbs, email=str(reset_in.email), token=reset_in.token, password=reset_in.password
    )
    return PasswordReset()


@router.get(
    "/users",
    response_model=Page[UserRead],
    responses={401: error_doc("NOT_AUTHENTICATED"), 403: error_doc("NOT_SUPERUSER")},
)
async def list_users(_: Superuser, dbs: DBs, page: UserPageQuery) -> Page[UserRead]:
    """Every account, `{total, results}`, one page at a time: ordered by `created_on`
    (default) or `email`, then by id (superusers only)."""
    users, total = await core.list_users(dbs, page)
    return Page(total=total, results=[UserRead.model_validate(user) for user in users])


@router.get(
    "/_authenticated", response_model=Greeting, responses={401: error_doc("NOT_AUTHENTICATED")}
)
async def authenticated(user: CurrentUser) -> Greeting:
    """A greeting for a logged-in caller (lets a front end check its token)."""
    return Greeting(message=f"Hello {user.first_name}!")
