"""The in-process OpenFeature provider: ``openfeature.api.get_client()`` over the flag cache.

Registered as OpenFeature's default provider when the app starts (``lifespan.py``), so
application code may read flags through the standard SDK as well as ``is_enabled``::

    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext

    client = api.get_client()
    colour = client.get_string_value(
        "FF_BUTTON_COLOUR", "#000", EvaluationContext(targeting_key=str(user.id))
    )

The same values, variants and reasons as the OFREP endpoints (``STATIC``,
``TARGETING_MATCH``, ``SPLIT``, ``DISABLED``), served by a dict lookup (no query). Code
in this process is trusted: the ``targeting_key`` it passes is used as given (a user
id, or any string, which splits by the same sticky hash). Errors are OpenFeature's:
``FLAG_NOT_FOUND``, ``TYPE_MISMATCH`` (the flag's values are not of the type asked
for), ``PROVIDER_NOT_READY`` (the cache was never loaded); the SDK then answers the
code's default. Hooks (OpenTelemetry's, for instance) are added with
``api.add_hooks([...])`` (docs/openfeature.md).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import FlagNotFoundError, ProviderNotReadyError, TypeMismatchError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType
from openfeature.provider import AbstractProvider, Metadata

from fastapi_server.apps.feature_flags import core

PROVIDER_NAME = "fastapi_server in-process flags"
ObjectValue = Sequence[FlagValueType] | Mapping[str, FlagValueType]


def _target(context: EvaluationContext | None) -> uuid.UUID | str | None:
    key = None if context is None else context.targeting_key
    if not key:
        return None
    try:
        return uuid.UUID(key)
    except ValueError:
        return key


class InProcessProvider(AbstractProvider):
    """OpenFeature provider reading this process's flag cache (see the module)."""

    def get_metadata(self) -> Metadata:
        return Metadata(name=PROVIDER_NAME)

    def _resolve(
        self, flag_key: str, kinds: tuple[type, ...], context: EvaluationContext | None
    ) -> FlagResolutionDetails[Any]:
        if not core.cache_loaded():
            raise ProviderNotReadyError("the flags have not been loaded yet")
        resolution = core.resolve(flag_key, _target(context))
        if resolution is None:
            raise FlagNotFoundError(f"no feature flag {flag_key!r}")
        value = resolution.value
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            raise TypeMismatchError(f"flag {flag_key!r} is not of the type asked for")
        if isinstance(value, dict):
            value = copy.deepcopy(value)  # the caller's own copy
        return FlagResolutionDetails(
            value=value, reason=resolution.reason.value, variant=resolution.variant
        )

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, (bool,), evaluation_context)

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, (str,), evaluation_context)

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, (int,), evaluation_context)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, (float,), evaluation_context)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: ObjectValue,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[ObjectValue]:
        return self._resolve(flag_key, (dict, list), evaluation_context)


def register() -> None:
    """Make the in-process provider OpenFeature's default, once per process."""
    if api.get_provider_metadata().name != PROVIDER_NAME:
        api.set_provider(InProcessProvider())
