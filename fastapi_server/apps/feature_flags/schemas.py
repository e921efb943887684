"""Request and response bodies of the feature flags app."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from fastapi_server.apps.feature_flags.variants import VARIANT_NAME_PATTERN, variants_problem
from fastapi_server.lib.validation import SafeLine, SafeStr

CODENAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
CODENAME_RULE = "1 to 100 characters, each a letter, a digit, '_', '-' or '.'"
# Names that GET /feature-flags/{codename} could never reach: "evaluate" is another
# endpoint, and clients resolve "." and ".." in URLs. The database refuses them too
# (models.RESERVED_CODENAMES_SQL).
RESERVED_CODENAMES = frozenset({"evaluate", ".", ".."})


def check_codename(value: str) -> str:
    """The codename itself, or ValueError saying what a codename may be."""
    if not CODENAME_PATTERN.fullmatch(value):
        raise ValueError(f"a codename is {CODENAME_RULE}")
    if value in RESERVED_CODENAMES:
        raise ValueError(
            f"{value!r} is reserved (GET /feature-flags/{value} could not reach such a flag); "
            "choose another codename"
        )
    return value


# The rule for OpenAPI too: the pattern, and the reserved names excluded.
CODENAME_SCHEMA: dict[str, Any] = {
    "pattern": f"^{CODENAME_PATTERN.pattern}$",
    "not": {"enum": sorted(RESERVED_CODENAMES)},
}
Codename = Annotated[str, AfterValidator(check_codename), Field(json_schema_extra=CODENAME_SCHEMA)]
# No control characters (PostgreSQL cannot store NUL: a 422 here, not a 500 there);
# the label is one line, the description may have several.
Label = Annotated[SafeLine, Field(max_length=200, examples=["Enable registration"])]
Description = Annotated[SafeStr, Field(max_length=10_000)]
UserIds = Annotated[list[uuid.UUID], Field(max_length=10_000)]


def _a_number(value: Any) -> Any:
    """A JSON number only: not true/false, nor a string of digits (the schema says integer;
    72.0 is one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value


RolloutPercentage = Annotated[int, Field(ge=0, le=100), BeforeValidator(_a_number)]
# Strict: only JSON's true and false (not 1 or "yes"), as the schema says.
Active = Annotated[bool, Field(strict=True)]
FlagType = Literal["boolean", "string", "integer", "float", "object"]
VariantName = Annotated[
    str, StringConstraints(pattern=f"^{VARIANT_NAME_PATTERN.pattern}$"), Field(examples=["blue"])
]
Variants = Annotated[
    dict[VariantName, JsonValue],
    Field(
        max_length=100,
        examples=[{"blue": "#00f", "red": "#f00"}],
        json_schema_extra={"additionalProperties": False},  # names outside the pattern
    ),
]
Weights = Annotated[
    dict[VariantName, Annotated[int, Field(ge=0, le=100)]],
    Field(examples=[{"blue": 50, "red": 50}], json_schema_extra={"additionalProperties": False}),
]
VARIANT_FIELDS = ("flag_type", "variants", "default_variant", "off_variant", "weights")


def check_variants(values: dict[str, Any]) -> None:
    """ValueError saying what is inconsistent in these variant fields (``variants.py``)."""
    problem = variants_problem(
        values["flag_type"],
        values["variants"],
        values["default_variant"],
        values["off_variant"],
        values["weights"],
        values["rollout_percentage"],
    )
    if problem is None and "\\u0000" in json.dumps(values["variants"]):
        problem = "variant values cannot contain NUL characters"
    if problem is not None:
        raise ValueError(problem)


class FeatureFlagCreate(BaseModel):
    """A new flag; off unless ``is_active`` says otherwise."""

    codename: Annotated[Codename, Field(examples=["FF_NEW_CHECKOUT"])]
    label: Label = ""
    description: Description = ""
    is_active: Active = False
    user_ids: UserIds = []
    rollout_percentage: RolloutPercentage = 100
    flag_type: FlagType = "boolean"
    variants: Variants = {}
    default_variant: VariantName | None = None
    off_variant: VariantName | None = None
    weights: Weights = {}


NULLABLE_IN_UPDATE = frozenset({"default_variant", "off_variant"})


def _no_null_in_schema(schema: dict[str, Any]) -> None:
    """OpenAPI says what the validator below enforces: a field is left out, never null
    (but for ``NULLABLE_IN_UPDATE``: the variants' names go with the variants)."""
    for name, field in schema.get("properties", {}).items():
        if name in NULLABLE_IN_UPDATE:
            continue
        choices = field.pop("anyOf", None)
        if choices is not None:
            field.update(next(choice for choice in choices if choice != {"type": "null"}))
            field.pop("default", None)


class FeatureFlagUpdate(BaseModel):
    """The fields to change; those left out keep their value (null is refused, but for
    ``default_variant`` and ``off_variant`` when the variants are removed)."""

    model_config = ConfigDict(json_schema_extra=_no_null_in_schema)

    label: Label | None = None
    description: Description | None = None
    is_active: Active | None = None
    user_ids: UserIds | None = None
    rollout_percentage: RolloutPercentage | None = None
    flag_type: FlagType | None = None
    variants: Variants | None = None
    default_variant: VariantName | None = None
    off_variant: VariantName | None = None
    weights: Weights | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        nulls = [
            name
            for name in self.model_fields_set - NULLABLE_IN_UPDATE
            if getattr(self, name) is None
        ]
        if nulls:
            raise ValueError(f"{', '.join(sorted(nulls))} cannot be null; leave it out instead")
        return self

    def changes(self) -> dict[str, Any]:
        """Only what the caller sent."""
        return self.model_dump(exclude_unset=True)


class FeatureFlagPublicRead(BaseModel):
    """A flag as anyone may read it: its name and whether it is switched on.

    Its targeting (who sees it) and its description are for superusers only.
    """

    model_config = ConfigDict(from_attributes=True)

    codename: str
    label: str
    is_active: bool


FEATURE_FLAG_PUBLIC_LIST = TypeAdapter(list[FeatureFlagPublicRead])
"""The flag list as anyone may read it: rows validated into it (core), rendered as JSON (API)."""


class FeatureFlagRead(BaseModel):
    """A flag as superusers read it in the list: its values, targeting and timestamps.

    No actors: ``created_by``/``updated_by`` are in ``FeatureFlagAdminRead`` and the
    history.
    """

    model_config = ConfigDict(from_attributes=True)

    codename: str
    label: str
    description: str
    is_active: bool
    user_ids: list[uuid.UUID]
    rollout_percentage: int
    flag_type: str
    variants: dict[str, Any]
    default_variant: str | None
    off_variant: str | None
    weights: dict[str, int]
    created_on: datetime
    updated_on: datetime


FEATURE_FLAG_LIST = TypeAdapter(list[FeatureFlagRead])
"""The superusers' flag list: rows validated into it (core), rendered as JSON (the API)."""


class FeatureFlagAdminRead(FeatureFlagRead):
    """A flag with who created it and who changed it last (superusers only)."""

    created_by: str
    updated_by: str


class HistoryOrder(StrEnum):
    """Sort keys of a flag's history (its id, the order of the changes, breaks ties)."""

    CHANGED_ON = "changed_on"


class FeatureFlagHistoryRead(BaseModel):
    """One change of a flag: its values before and after, who and when."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    codename: str
    action: str = Field(examples=["updated"])
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    actor: str
    changed_on: datetime


# -- OFREP's error bodies (the protocol's, not the platform's ``{"detail": ...}``) ----


class OfrepEvaluationFailure(BaseModel):
    """One flag's evaluation refused (OFREP ``evaluationFailure``): the body is not JSON
    (``PARSE_ERROR``) or its context is not valid (``INVALID_CONTEXT``)."""

    key: str
    error_code: Literal["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"] = (
        Field(alias="errorCode")
    )
    error_details: str = Field(alias="errorDetails")


class OfrepFlagNotFound(BaseModel):
    """No flag has this key (OFREP ``flagNotFound``)."""

    key: str
    error_code: Literal["FLAG_NOT_FOUND"] = Field(alias="errorCode")
    error_details: str = Field(alias="errorDetails")


class OfrepFailure(BaseModel):
    """An error naming no flag (OFREP ``bulkEvaluationFailure``; also the body of its 401
    and 500, which the spec leaves open or reduces to ``errorDetails``)."""

    error_code: Literal["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"] = (
        Field(alias="errorCode")
    )
    error_details: str = Field(alias="errorDetails")
