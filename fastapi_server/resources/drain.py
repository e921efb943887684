"""Graceful drain: on SIGTERM, report "not ready" for a while before the server stops.

A load balancer or Kubernetes stops sending new requests to an instance only once its
readiness probe (``/_ready``) fails. Stopping at once on SIGTERM would refuse the
requests still on their way, so for ``SHUTDOWN_DRAIN_SECONDS`` after SIGTERM the
instance keeps serving everything while ``/_ready`` answers 503; then the server's own
SIGTERM handling runs (uvicorn stops accepting, finishes the requests in flight, and
runs the shutdown). A second SIGTERM ends the drain at once.

Only installed when the drain is longer than zero and the server (uvicorn) handles
SIGTERM in this thread with a Python handler it can be handed back to.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger(__name__)

SignalHandler = Callable[[int, FrameType | None], object]


class Drain:
    """The drain of one server process; ``draining`` is what ``/_ready`` checks first."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.draining = False
        self._server_handler: SignalHandler | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Take SIGTERM over from the server's handler (see the module)."""
        if self.seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if not callable(current):  # not under a server that handles SIGTERM itself
            return
        self._server_handler = current
        self._loop = asyncio.get_running_loop()
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def uninstall(self) -> None:
        """Give SIGTERM back to the server's handler."""
        if self._timer is not None:
            self._timer.cancel()
        if self._server_handler is not None:
            signal.signal(signal.SIGTERM, self._server_handler)
            self._server_handler = None

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.draining:  # asked twice: stop now
            self._stop_server()
            return
        self.draining = True
        logger.info("SIGTERM: draining for %gs before stopping", self.seconds)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start_timer)

    def _start_timer(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(self.seconds, self._stop_server)

    def _stop_server(self) -> None:
        handler = self._server_handler
        self.uninstall()
        if handler is not None:
            handler(signal.SIGTERM, None)
