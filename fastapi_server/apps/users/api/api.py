"""HTTP endpoints of the users app (paths and fields are fixed by the web front end)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from fastapi_server.apps.feature_flags.entitlements import require_flag
from fastapi_server.apps.users import core
from fastapi_server.apps.users.entitlements import CurrentUser, Superuser, within_rate_limits
from fastapi_server.apps.users.errors import (
    HashingBusy,
    LoginBadCredentials,
    LoginUserLocked,
    LoginUserNotVerified,
    NotAuthenticated,
    NotSuperuser,
    RefreshTokenInvalid,
    RegisterInvalidEmail,
    RegisterInvalidPassword,
    ResetPasswordBadToken,
    ResetPasswordInvalidPassword,
    VerifyAlreadyVerified,
    VerifyBadToken,
    VerifyInvalidPassword,
    VerifyTooManyRequests,
)
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
from fastapi_server.lib.errors import error_doc, error_responses
from fastapi_server.lib.pagination import Page, PageRequest
from fastapi_server.resources.http import APIRouter, DBs, page_query
from fastapi_server.resources.rate_limits import RateLimited

router = APIRouter(tags=["users"])

REGISTRATION_FLAG = "FF_ENABLE_REGISTRATION"
UserPageQuery = Annotated[
    PageRequest[UserOrder], Depends(page_query(UserOrder, UserOrder.CREATED_ON))
]


# The profile first: routes are matched in order, and GET /users/user is the most requested.
@router.get("/users/user", response_model=UserRead, responses=error_responses(NotAuthenticated))
async def read_me(user: CurrentUser) -> UserRead:
    """The caller's account."""
    return UserRead.model_validate(user)


@router.patch("/users/user", response_model=UserRead, responses=error_responses(NotAuthenticated))
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
        **error_responses(RegisterInvalidPassword, RegisterInvalidEmail, RateLimited, HashingBusy),
        404: error_doc("FEATURE_DISABLED: registration is switched off (FF_ENABLE_REGISTRATION)"),
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
    responses=error_responses(VerifyTooManyRequests, RateLimited),
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
    responses=error_responses(
        VerifyBadToken, VerifyAlreadyVerified, VerifyInvalidPassword, RateLimited, HashingBusy
    ),
)
async def verify(verify_in: VerifyIn, dbs: DBs, request: Request) -> Verified:
    """Confirm the email with the token and the emailed code; a welcome email follows.
    With `password`, the account gets that password."""
    await within_rate_limits(request, "verify", core.verification_subject(verify_in.token))
    await core.verify(
        dbs, token=verify_in.token, code=verify_in.registration_code, password=verify_in.password
    )
    return Verified()


_LOGIN_RESPONSES = error_responses(
    LoginBadCredentials, LoginUserNotVerified, LoginUserLocked, RateLimited, HashingBusy
)

# RFC 6749 5.1: an answer carrying tokens is never stored by a cache.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def login_form(
    username: Annotated[str, Form(min_length=1, description="The account's email.")],
    password: Annotated[str, Form(min_length=1, json_schema_extra={"format": "password"})],
    grant_type: Annotated[str, Form(description="Ignored (OAuth2 sends `password`).")] = "",
    scope: Annotated[str, Form()] = "",
    client_id: Annotated[str, Form()] = "",
    client_secret: Annotated[str, Form(json_schema_extra={"format": "password"})] = "",
) -> OAuth2PasswordRequestForm:
    """The OAuth2 password form, with what the API requires of it stated in OpenAPI: an
    empty ``username`` or ``password`` counts as missing (422).

    A coroutine rather than a subclass of the form: FastAPI calls a class dependency in
    a worker thread, a hop that every login would pay for nothing."""
    return OAuth2PasswordRequestForm(
        grant_type=grant_type or None,
        username=username,
        password=password,
        scope=scope,
        client_id=client_id or None,
        client_secret=client_secret or None,
    )


async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends(login_form)],
    dbs: DBs,
    request: Request,
    response: Response,
) -> TokenPairOut:
    """Log in with the OAuth2 password form."""
    await within_rate_limits(request, "login", form.username)
    pair = await core.login(dbs, email=form.username, password=form.password)
    response.headers.update(_NO_STORE)
    return TokenPairOut(**pair.__dict__)


router.add_api_route(
    "/login",
    login,
    methods=["POST"],
    response_model=TokenPairOut,
    responses=_LOGIN_RESPONSES,
    summary="Log in",
    description="OAuth2 password form: `username` is the email. Answers an access and a "
    "refresh token. Five failures in a row lock the account for a while.",
)
router.add_api_route(
    "/users/login",
    login,
    methods=["POST"],
    response_model=TokenPairOut,
    responses=_LOGIN_RESPONSES,
    summary="Log in (alias of /login)",
    operation_id="users_login_alias",
)


@router.post(
    "/auth/refresh-tokens",
    response_model=TokenPairOut,
    responses=error_responses(RefreshTokenInvalid),
)
async def refresh_tokens(refresh_in: RefreshIn, dbs: DBs, response: Response) -> TokenPairOut:
    """Exchange a refresh token for a new pair. Each refresh token works once: presented
    again within 10 seconds (two tabs) it gets a fresh pair, later it revokes every
    token of that login and logs the user out everywhere."""
    pair = await core.refresh_tokens(dbs, refresh_in.token)
    response.headers.update(_NO_STORE)
    return TokenPairOut(**pair.__dict__)


@router.post("/auth/logout", response_model=LoggedOut, responses=error_responses(NotAuthenticated))
async def logout(user: CurrentUser, dbs: DBs) -> LoggedOut:
    """Sign out everywhere: the caller's refresh and access tokens stop working."""
    await core.logout(dbs, user)
    return LoggedOut()


@router.post(
    "/auth/forgot-password",
    response_model=ForgotPasswordOut,
    response_model_exclude_none=True,
    responses=error_responses(RateLimited),
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
    responses=error_responses(ResetPasswordBadToken, ResetPasswordInvalidPassword, HashingBusy),
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
    responses=error_responses(NotAuthenticated, NotSuperuser),
)
async def list_users(_: Superuser, dbs: DBs, page: UserPageQuery) -> Page[UserRead]:
    """Every account, `{total, results}`, one page at a time: ordered by `created_on`
    (default) or `email`, then by id (superusers only)."""
    users, total = await core.list_users(dbs, page)
    return Page(total=total, results=[UserRead.model_validate(user) for user in users])


@router.get("/_authenticated", response_model=Greeting, responses=error_responses(NotAuthenticated))
async def authenticated(user: CurrentUser) -> Greeting:
    """A greeting for a logged-in caller (lets a front end check its token)."""
    return Greeting(message=f"Hello {user.first_name}!")
