"""Waiting for something another task or process makes true (no fixed sleeps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]],
    within: float = 5.0,
    what: str = "the condition",
    interval: float = 0.02,
) -> float:
    """Poll ``check`` until it is true and return the seconds it took; fail after ``within``."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - start
