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
from dataclasses import dataclass
from types import MappingProxyType


def bucket(codename: str, user_id: uuid.UUID) -> int:
    """The user's sticky bucket for this flag, 0-99: sha256(codename + ":" + user id) mod 100."""
    digest = hashlib.sha256(f"{codename}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


@dataclass(frozen=True, slots=True)
class FlagRule:
    """What evaluation needs of a flag."""

    codename: str
    is_active: bool
    user_ids: frozenset[uuid.UUID] = frozenset()
    rollout_percentage: int = 100

    def evaluate(self, user_id: uuid.UUID | None) -> bool:
        """On for this caller? ``is_active`` and (listed, or bucket < rollout); anonymous: 100%."""
        if not self.is_active:
            return False
        if self.rollout_percentage >= 100:
            return True
        if user_id is None:
            return False
        return user_id in self.user_ids or bucket(self.codename, user_id) < self.rollout_percentage


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
        """Every flag's value for anonymous callers (read-only): the same for everyone, so
        it is worked out once per change of ``rules``, not per request."""
        rules, view = self._anonymous
        if rules is not self.rules:
            rules = self.rules
            view = MappingProxyType({code: rule.evaluate(None) for code, rule in rules.items()})
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
