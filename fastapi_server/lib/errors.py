"""The one error type the apps raise; ``main.py`` renders it as ``{"detail": {"code": ...}}``."""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """A domain error with a machine-readable code and the HTTP status it maps to.

    Subclasses set ``code`` and ``status_code``; ``extra`` adds fields to the body
    (for example ``reason`` for a rejected password). Core code raises these and knows
    nothing of HTTP; scripts print ``message``.
    """

    code: ClassVar[str] = "APP_ERROR"
    status_code: ClassVar[int] = 400
    message: ClassVar[str] = "The request could not be completed."
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

    def headers(self) -> dict[str, str]:
        """HTTP headers of the answer: ``Retry-After`` when the error says when to retry."""
        retry_after = self.extra.get("retry_after")
        return {} if retry_after is None else {"Retry-After": str(retry_after)}


def error_doc(description: str) -> dict[str, Any]:
    """An entry of an endpoint's ``responses=``: how ``/docs`` describes an error status."""
    return {"description": description}
