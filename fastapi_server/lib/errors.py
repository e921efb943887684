"""The one error type the apps raise, and how endpoints declare the errors they answer.

Every error is answered ``{"detail": {"code": ..., "message": ...}}``
(``resources/errors.py`` renders them and documents the shape in OpenAPI).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

# An error code: upper-case words joined by underscores (NOT_FOUND, LOGIN_USER_LOCKED).
_CODE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
_ASIDE = re.compile(r"\([^)]*\)|`[^`]*`")

# The OpenAPI extension listing the ``code`` values a response may carry.
ERROR_CODES_KEY = "x-error-codes"


class AppError(Exception):
    """A domain error with a machine-readable code and the HTTP status it maps to.

    Subclasses set ``code`` and ``status_code``; ``extra`` adds fields to the body
    (for example ``reason`` for a rejected password). Core code raises these and knows
    nothing of HTTP; scripts print ``message``. A 429 or 503 answer carries
    ``Retry-After``: the ``retry_after`` extra field (seconds) when given, else
    ``retry_after_seconds``.
    """

    code: ClassVar[str] = "APP_ERROR"
    status_code: ClassVar[int] = 400
    message: ClassVar[str] = "The request could not be completed."
    retry_after_seconds: ClassVar[int] = 1
    # True for errors whose bookkeeping (a failure counter, a revocation) must outlive
    # them: the request's transaction commits, then the error is answered as usual.
    keeps_changes: ClassVar[bool] = False

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.detail_message = message or self.message
        self.extra = extra
        super().__init__(self.detail_message)

    def to_detail(self) -> dict[str, Any]:
        """The body's ``detail`` object."""
        return {"code": self.code, "message": self.detail_message, **self.extra}

    @property
    def retry_after(self) -> int:
        """Seconds a client should wait before trying again (for 429 and 503)."""
        value = self.extra.get("retry_after")
        return max(1, int(value)) if isinstance(value, int | float) else self.retry_after_seconds


def codes_in(description: str) -> list[str]:
    """The error codes a description names, outside parentheses and backquotes."""
    return list(dict.fromkeys(_CODE.findall(_ASIDE.sub("", description))))


def error_doc(description: str, *codes: str) -> dict[str, Any]:
    """An entry of an endpoint's ``responses=``: an error status, described for ``/docs``.

    ``codes`` are the ``detail.code`` values of that status; without them, the codes the
    description names (``"LOGIN_USER_LOCKED: too many failures"``). OpenAPI then gives
    the response the platform's ``Error`` body, with its codes listed.
    """
    return {"description": description, ERROR_CODES_KEY: list(codes) or codes_in(description)}


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the errors an endpoint can answer, grouped by their status."""
    by_status: dict[int, list[type[AppError]]] = {}
    for error in errors:
        by_status.setdefault(error.status_code, []).append(error)
    return {status: _describe(group) for status, group in sorted(by_status.items())}


def _describe(errors: Iterable[type[AppError]]) -> dict[str, Any]:
    errors = list(errors)
    text = "; ".join(f"`{error.code}`: {error.message.rstrip('.')}" for error in errors)
    return {"description": text, ERROR_CODES_KEY: [error.code for error in errors]}
