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
    status_code = 422
    message = "The flag's variants would be inconsistent."
