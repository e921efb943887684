"""Typed variants of a flag: the rules a consistent flag follows.

A flag is a boolean by default: without variants it serves ``true`` when on and
``false`` when off, as it always did. With variants it serves a JSON value of its
``flag_type``: ``default_variant`` when on, ``off_variant`` when off (``is_active``
false, or outside a partial rollout), or, with ``weights``, the variant a caller's
sticky bucket falls in.

The same rules are enforced by PostgreSQL (migration 0007, trigger
``feature_flags_check_variants``), so a psql administrator who types a bad row gets an
error and never a broken cache; ``variants_problem`` lets the API and the scripts say
what is wrong before the database does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

FLAG_TYPES = ("boolean", "string", "integer", "float", "object")
VARIANT_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
VARIANT_NAME_RULE = "1 to 100 characters, each a letter, a digit, '_', '-' or '.'"
# The variants a boolean flag without variants serves.
IMPLICIT_ON, IMPLICIT_OFF = "on", "off"


def value_matches(flag_type: str, value: object) -> bool:
    """Is ``value`` (decoded JSON) a value of ``flag_type``?"""
    if flag_type == "boolean":
        return isinstance(value, bool)
    if flag_type == "string":
        return isinstance(value, str)
    if flag_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if flag_type == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return flag_type == "object" and isinstance(value, dict)


def typed_value(flag_type: str, value: Any) -> Any:
    """``value`` as code reads it: a float flag's ``2`` is ``2.0``."""
    return float(value) if flag_type == "float" else value


def variants_problem(
    flag_type: str,
    variants: Mapping[str, Any],
    default_variant: str | None,
    off_variant: str | None,
    weights: Mapping[str, int],
    rollout_percentage: int,
) -> str | None:
    """What makes this combination inconsistent, in one sentence; None when it is fine."""
    if flag_type not in FLAG_TYPES:
        return f"flag_type must be one of {', '.join(FLAG_TYPES)}"
    if not variants:
        if flag_type != "boolean":
            return f"a {flag_type} flag needs variants"
        if default_variant is not None or off_variant is not None or weights:
            return "default_variant, off_variant and weights need variants"
        return None
    for name, value in variants.items():
        if not VARIANT_NAME_PATTERN.fullmatch(name):
            return f"variant name {name!r}: a variant name is {VARIANT_NAME_RULE}"
        if not value_matches(flag_type, value):
            return f"variant {name!r} is not a {flag_type} value"
    roles: dict[str, str | None] = {"default_variant": default_variant, "off_variant": off_variant}
    for role, chosen in roles.items():
        if chosen is None or chosen not in variants:
            return f"{role} must name one of the variants"
    return _weights_problem(variants, weights, rollout_percentage)


def _weights_problem(
    variants: Mapping[str, Any], weights: Mapping[str, int], rollout_percentage: int
) -> str | None:
    if not weights:
        return None
    unknown = sorted(set(weights) - set(variants))
    if unknown:
        return f"weights name unknown variants: {', '.join(unknown)}"
    if any(
        isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100 for w in weights.values()
    ):
        return "each weight is an integer from 0 to 100"
    if sum(weights.values()) != 100:
        return "weights must add up to 100"
    if rollout_percentage != 100:
        return "weights and a rollout_percentage below 100 cannot be combined"
    return None
