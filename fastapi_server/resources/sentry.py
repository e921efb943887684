"""Errors reported to Sentry when ``SENTRY_DSN`` is set and the ``sentry`` extra is installed.

sentry-sdk finds FastAPI and Starlette by itself: an unhandled error in a request
becomes an event with the request's route. The DSN and the optional ``SENTRY_RELEASE``,
``SENTRY_TRACES_SAMPLE_RATE`` and the like are read from the environment by the SDK.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def init_sentry(environment: str) -> bool:
    """Start reporting to Sentry (once per process is enough); False when it is off."""
    if not os.environ.get("SENTRY_DSN"):
        return False
    try:
        import sentry_sdk
    except ImportError:
        logger.warning("SENTRY_DSN is set but the sentry extra is not installed: no reports")
        return False
    # Never the request bodies, cookies or users' addresses: only what the error was.
    sentry_sdk.init(environment=environment, send_default_pii=False)
    return True
