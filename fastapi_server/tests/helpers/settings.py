"""Per-test settings overrides of one app: its prefixed variables, and its settings cache."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

SettingsEnv = Callable[..., None]


class CachedSettings(Protocol):
    """An app's ``get_*_settings`` (an ``lru_cache``)."""

    def __call__(self) -> Any: ...

    def cache_clear(self) -> None: ...


@contextlib.contextmanager
def app_settings_env(
    monkeypatch: pytest.MonkeyPatch, prefix: str, settings: CachedSettings
) -> Iterator[SettingsEnv]:
    """``configure(KEY="value", ...)`` sets ``<prefix>KEY`` and makes ``settings`` read it
    again; everything is undone, and the cache cleared, when the block ends."""

    def configure(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(f"{prefix}{key}", value)
        settings.cache_clear()

    try:
        yield configure
    finally:
        monkeypatch.undo()
        settings.cache_clear()
