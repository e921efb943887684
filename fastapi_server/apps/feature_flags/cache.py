"""The in-process flag cache: what ``core.is_enabled`` reads, never a query per check.

One cache per process, filled and kept fresh by ``database.listener.FlagListener``
(PostgreSQL ``LISTEN``/``NOTIFY``, with polling while that connection is down). Readers
do one dict lookup; writers swap in a new dict, so a reader never sees half an update.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from fastapi_server.apps.feature_flags.variants import IMPLICIT_OFF, IMPLICIT_ON, typed_value


def bucket(codename: str, key: uuid.UUID | str) -> int:
    """The caller's sticky bucket for this flag, 0-99: sha256(codename + ":" + key) mod 100.

    ``key`` is a user id (or, for a server-side OpenFeature caller, its targeting key).
    """
    digest = hashlib.sha256(f"{codename}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


class Reason(StrEnum):
    """Why a caller got its value (OpenFeature's resolution reasons, those OFREP allows)."""

    STATIC = "STATIC"  # the same for every caller: on with no targeting, or the anonymous view
    TARGETING_MATCH = "TARGETING_MATCH"  # the caller is one of the flag's user_ids
    SPLIT = "SPLIT"  # the caller's sticky bucket decided (rollout_percentage or weights)
    DISABLED = "DISABLED"  # is_active is false: the off variant for everyone


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a caller gets of a flag: the value, the variant's name and why."""

    value: Any
    variant: str
    reason: Reason


BOOLEAN_VARIANTS: Mapping[str, Any] = MappingProxyType({IMPLICIT_ON: True, IMPLICIT_OFF: False})


@dataclass(frozen=True, slots=True)
class FlagRule:
    """What evaluation needs of a flag (its variants already checked: ``variants.py``)."""

    codename: str
    is_active: bool
    user_ids: frozenset[uuid.UUID] = frozenset()
    rollout_percentage: int = 100
    flag_type: str = "boolean"
    variants: Mapping[str, Any] = field(default_factory=lambda: BOOLEAN_VARIANTS)
    default_variant: str = IMPLICIT_ON
    off_variant: str = IMPLICIT_OFF
    weights: Mapping[str, int] = field(default_factory=dict)
    # Worked out once from the fields above (see __post_init__).
    _off: Resolution = field(init=False, repr=False, compare=False)
    _on_static: Resolution = field(init=False, repr=False, compare=False)
    _on_listed: Resolution = field(init=False, repr=False, compare=False)
    _splits: tuple[tuple[int, Resolution], ...] = field(init=False, repr=False, compare=False)
    _on_is_true: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def served(name: str, reason: Reason) -> Resolution:
            return Resolution(typed_value(self.flag_type, self.variants[name]), name, reason)

        on = self.default_variant
        splits: list[tuple[int, Resolution]] = []
        upper = 0
        for name, weight in self.weights.items():
            if weight:
                upper += weight
                splits.append((upper, served(name, Reason.SPLIT)))
        setattr_ = object.__setattr__  # a frozen dataclass fills its derived fields so
        setattr_(self, "_off", served(self.off_variant, Reason.DISABLED))
        setattr_(self, "_on_static", served(on, Reason.STATIC))
        setattr_(self, "_on_listed", served(on, Reason.TARGETING_MATCH))
        setattr_(self, "_splits", tuple(splits))
        on_value = self.variants[on]
        setattr_(self, "_on_is_true", on_value is True or self.flag_type != "boolean")

    def evaluate(self, user_id: uuid.UUID | None) -> bool:
        """On for this caller? ``is_active`` and (listed, or bucket < rollout); anonymous: 100%.

        For a boolean flag with variants (or weights): the value it serves the caller.
        """
        if not self.is_active:
            return self._off.value is True
        if self._splits:
            return self.resolve(user_id).value is not False
        if self.rollout_percentage >= 100:
            return self._on_is_true
        if user_id is None:
            return self._off.value is True
        if user_id in self.user_ids or bucket(self.codename, user_id) < self.rollout_percentage:
            return self._on_is_true
        return self._off.value is True

    def resolve(self, key: uuid.UUID | str | None) -> Resolution:
        """The value, variant and reason for the caller ``key`` (None: anonymous)."""
        if not self.is_active:
            return self._off
        if key is not None and key in self.user_ids:
            return self._on_listed
        if self.rollout_percentage < 100:  # a partial rollout (never with weights)
            if key is None:
                return Resolution(self._off.value, self._off.variant, Reason.STATIC)
            inside = bucket(self.codename, key) < self.rollout_percentage
            chosen = self._on_static if inside else self._off
            return Resolution(chosen.value, chosen.variant, Reason.SPLIT)
        if self._splits and key is not None:
            position = bucket(self.codename, key)
            for upper, resolution in self._splits:
                if position < upper:
                    return resolution
        return self._on_static


class FlagCache:
    """Codename -> rule, and whether a full load ever succeeded."""

    def __init__(self) -> None:
        self.rules: Mapping[str, FlagRule] = {}
        self.loaded = False
        # time.monotonic() when the rules were last known to match the database: a load,
        # or a check of the listening connection (no notice can have been missed).
        self.refreshed_at: float | None = None
        self._anonymous: tuple[Mapping[str, FlagRule], Mapping[str, bool]] = ({}, {})

    def anonymous_view(self) -> Mapping[str, bool]:
        """The flags on for anonymous callers, each ``True`` (read-only): the same for
        everyone, so it is worked out once per change of ``rules``, not per request."""
        rules, view = self._anonymous
        if rules is not self.rules:
            rules = self.rules
            view = MappingProxyType(
                {code: True for code, rule in rules.items() if rule.evaluate(None)}
            )
            self._anonymous = (rules, view)
        return view

    def replace_all(self, rules: Iterable[FlagRule]) -> None:
        """A full reload: exactly these flags exist."""
        self.rules = {rule.codename: rule for rule in rules}
        self.loaded = True
        self.refreshed_at = time.monotonic()

    def update(self, codenames: Iterable[str], rules: Iterable[FlagRule]) -> None:
        """A partial reload of ``codenames``: those missing from ``rules`` were deleted."""
        fresh = dict(self.rules)
        for codename in codenames:
            fresh.pop(codename, None)
        fresh.update((rule.codename, rule) for rule in rules)
        self.rules = fresh
        self.refreshed_at = time.monotonic()

    def confirm_fresh(self) -> None:
        """The listening connection answered: every change so far has reached the cache."""
        if self.loaded:
            self.refreshed_at = time.monotonic()

    def reset(self) -> None:
        """Back to never loaded (the last lifespan of the process ended)."""
        self.rules = {}
        self.loaded = False
        self.refreshed_at = None


flag_cache = FlagCache()
