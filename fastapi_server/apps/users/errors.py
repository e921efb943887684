"""Domain errors of the users app (rendered as ``{"detail": {"code": ...}}``)."""

from __future__ import annotations

from fastapi_server.lib.errors import AppError


class KeepsChanges(AppError):
    """An error whose bookkeeping must be committed (failure counters, revocations).

    Raising normally rolls the request back; for these the request's session commits
    first (``AppError.keeps_changes``), so the counter or the revocation is kept.
    """

    keeps_changes = True


class NotAuthenticated(AppError):
    code = "NOT_AUTHENTICATED"
    status_code = 401
    message = "Missing, invalid or expired access token."


class NotSuperuser(AppError):
    code = "NOT_SUPERUSER"
    status_code = 403
    message = "Only superusers may do this."


class RegisterInvalidPassword(AppError):
    code = "REGISTER_INVALID_PASSWORD"
    status_code = 400
    message = "The password does not meet the password policy."


class RegisterInvalidEmail(AppError):
    code = "REGISTER_INVALID_EMAIL"
    status_code = 400
    message = "We cannot send email to this address."


class VerifyBadToken(KeepsChanges):
    code = "VERIFY_USER_BAD_TOKEN"
    status_code = 400
    message = "The verification token or code is wrong, expired or already used."


class VerifyInvalidPassword(AppError):
    code = "VERIFY_INVALID_PASSWORD"
    status_code = 400
    message = "The password does not meet the password policy."


class VerifyAlreadyVerified(AppError):
    code = "VERIFY_USER_ALREADY_VERIFIED"
    status_code = 400
    message = "This account is already verified."


class VerifyTooManyRequests(AppError):
    """Raised with ``retry_after`` (seconds)."""

    code = "VERIFY_TOO_MANY_REQUESTS"
    status_code = 429
    message = "Too many verification codes were requested; try again later."
    retry_after_seconds = 3600  # the cap counts the last hour: a slot is free by then


class LoginBadCredentials(KeepsChanges):
    code = "LOGIN_BAD_CREDENTIALS"
    status_code = 400
    message = "Wrong email or password."


class LoginUserNotVerified(AppError):
    code = "LOGIN_USER_NOT_VERIFIED"
    status_code = 400
    message = "Verify your email before logging in."


class LoginUserLocked(AppError):
    code = "LOGIN_USER_LOCKED"
    status_code = 429
    message = "Too many failed logins; try again later."


class RefreshTokenInvalid(KeepsChanges):
    """400 like OAuth2's ``invalid_grant`` (RFC 6749, section 5.2): the grant is bad, the
    caller may well be authenticated."""

    code = "REFRESH_TOKEN_INVALID"
    status_code = 400
    message = "The refresh token is invalid, expired, used or revoked."


class ResetPasswordBadToken(AppError):
    code = "RESET_PASSWORD_BAD_TOKEN"
    status_code = 400
    message = "The reset token is invalid, expired or already used."


class ResetPasswordInvalidPassword(AppError):
    code = "RESET_PASSWORD_INVALID_PASSWORD"
    status_code = 400
    message = "The password does not meet the password policy."


class UserNotFound(AppError):
    code = "USER_NOT_FOUND"
    status_code = 404
    message = "No user has this email."


class InvalidPassword(AppError):
    """A weak password given to a script (ops tools)."""

    code = "INVALID_PASSWORD"
    status_code = 400
    message = "The password does not meet the password policy."


class InvalidEmail(AppError):
    """A malformed address given to a script (the API validates in its schemas)."""

    code = "INVALID_EMAIL"
    status_code = 400
    message = "Not a valid email address."


class HashingBusy(AppError):
    """Every password hashing turn stayed taken for USERS_HASHING_QUEUE_TIMEOUT_SECONDS."""

    code = "HASHING_BUSY"
    status_code = 503
    message = "The server is busy checking passwords; try again shortly."
