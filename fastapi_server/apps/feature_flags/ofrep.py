"""OFREP, the OpenFeature Remote Evaluation Protocol (spec 0.3.0): evaluation rules.

Both evaluations are served from the process's cache (``cache.py``): no query per
evaluation. Whose context is evaluated is decided before (``entitlements.ofrep_caller``):

* a caller with a Bearer token evaluates as its user id; a ``targetingKey`` naming
  anyone else is ignored;
* an anonymous caller evaluates as anonymous (its ``targetingKey`` is ignored too);
* a superuser, or a service with the ``X-API-Key``, evaluates for the ``targetingKey`` it
  sends (a user id, or any string: it splits by the same sticky hash).

What anonymous callers may know: a single evaluation answers as for anyone, but the
bulk evaluation lists only the flags that are on for everyone (active, rolled out to
100%), as ``GET /feature-flags/evaluate`` does.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi_server.apps.feature_flags.cache import FlagRule, Resolution, flag_cache
from fastapi_server.apps.feature_flags.errors import (
    OfrepFlagNotFound,
    OfrepInvalidContext,
    OfrepNotReady,
    OfrepParseError,
)

TargetKey = uuid.UUID | str | None


@dataclass(frozen=True, slots=True)
class Bulk:
    """A bulk evaluation's JSON body and its ETag (a hash of the body)."""

    body: bytes
    etag: str


def read_context(raw_body: bytes) -> dict[str, Any]:
    """The evaluation context of a request body; ``OfrepParseError`` when the body is not
    a JSON object, ``OfrepInvalidContext`` when its context is not an object with a
    string ``targetingKey`` (which may be left out)."""
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise OfrepParseError() from None
    if not isinstance(body, dict):
        raise OfrepParseError()
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise OfrepInvalidContext("context must be a JSON object.")
    key = context.get("targetingKey")
    if key is not None and not isinstance(key, str):
        raise OfrepInvalidContext("targetingKey must be a string.")
    return context


def requested_key(context: Mapping[str, Any]) -> TargetKey:
    """The ``targetingKey`` of ``context`` as the cache reads it: a user id when it is
    one, else the string itself; None when absent or empty."""
    key = context.get("targetingKey")
    if not key:
        return None
    try:
        return uuid.UUID(key)
    except ValueError:
        return str(key)


def _rules() -> Mapping[str, FlagRule]:
    if not flag_cache.loaded:
        raise OfrepNotReady()
    return flag_cache.rules


def _success(key: str, resolution: Resolution) -> dict[str, Any]:
    return {
        "key": key,
        "value": resolution.value,
        "reason": resolution.reason.value,
        "variant": resolution.variant,
        "metadata": {},
    }


def evaluate_flag(key: str, target: TargetKey) -> bytes:
    """One flag's OFREP success body for ``target``; ``OfrepFlagNotFound`` if unknown."""
    rule = _rules().get(key)
    if rule is None:
        raise OfrepFlagNotFound(f"Flag {key!r} was not found.")
    return dumps(_success(key, rule.resolve(target)))


def dumps(body: object) -> bytes:
    """Compact JSON, as every OFREP answer is sent."""
    return json.dumps(body, separators=(",", ":")).encode()


def _bulk(flags: list[dict[str, Any]]) -> Bulk:
    body = dumps({"flags": flags})
    return Bulk(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


class _AnonymousBulk:
    """The anonymous bulk evaluation, the same for every anonymous caller: worked out
    again only when the flags change."""

    def __init__(self) -> None:
        self._rules: Mapping[str, FlagRule] | None = None
        self._bulk = _bulk([])

    def __call__(self, rules: Mapping[str, FlagRule]) -> Bulk:
        if rules is not self._rules:
            self._bulk = _bulk(
                [
                    _success(code, rule.resolve(None))
                    for code, rule in rules.items()
                    if rule.is_active and rule.rollout_percentage >= 100
                ]
            )
            self._rules = rules
        return self._bulk


_anonymous_bulk = _AnonymousBulk()


def evaluate_all(target: TargetKey, *, anonymous: bool) -> Bulk:
    """Every flag the caller may see, evaluated for ``target``, with its ETag."""
    rules = _rules()
    if anonymous:
        return _anonymous_bulk(rules)
    return _bulk([_success(code, rule.resolve(target)) for code, rule in rules.items()])


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Does an ``If-None-Match`` header name ``etag`` (weakly compared, lists and ``*``)?"""
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in candidates or "*" in candidates
