"""The feature flags app's domain errors (rendered as ``{"detail": {"code": ...}}``)."""

from __future__ import annotations

from fastapi_server.lib.errors import AppError


class FeatureDisabled(AppError):
    """A ``require_flag`` dependency found its flag off: the feature does not exist for now."""

    code = "FEATURE_DISABLED"
    status_code = 404
    message = "This feature is not available."


class FeatureFlagNotFound(AppError):
    code = "FEATURE_FLAG_NOT_FOUND"
    status_code = 404
    message = "No feature flag has this codename."


class FeatureFlagAlreadyExists(AppError):
    code = "FEATURE_FLAG_ALREADY_EXISTS"
    status_code = 409
    message = "A feature flag with this codename already exists."


class InvalidFlagVariants(AppError):
    """A change would leave the flag's variants inconsistent (``variants.py``)."""

    code = "INVALID_FLAG_VARIANTS"
    status_code = 400
    message = "The flag's variants would be inconsistent."


class OfrepError(AppError):
    """An OFREP evaluation error, answered with the protocol's body
    (``{"key"?, "errorCode", "errorDetails"}``) rather than ``{"detail": ...}``."""

    code = "GENERAL"
    status_code = 500
    message = "The flags could not be evaluated."

    def ofrep_body(self, key: str | None = None) -> dict[str, str]:
        """The response body the OFREP spec gives this error."""
        body = {"errorCode": self.code, "errorDetails": self.detail_message}
        return body if key is None else {"key": key, **body}


class OfrepParseError(OfrepError):
    code = "PARSE_ERROR"
    status_code = 400
    message = "The request body is not a JSON object."


class OfrepInvalidContext(OfrepError):
    code = "INVALID_CONTEXT"
    status_code = 400
    message = "The evaluation context is not valid."


class OfrepFlagNotFound(OfrepError):
    code = "FLAG_NOT_FOUND"
    status_code = 404
    message = "No feature flag has this key."


class OfrepNotReady(OfrepError):
    code = "GENERAL"
    status_code = 500
    message = "The flags have not been loaded yet; try again shortly."


class OfrepUnauthorized(OfrepError):
    """A wrong ``X-API-Key`` (or one sent while no key is configured)."""

    code = "GENERAL"
    status_code = 401
    message = "The X-API-Key is not valid."
