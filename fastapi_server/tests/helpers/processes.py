"""Real processes for tests: the API under uvicorn, the ops scripts, free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(
    url: str, timeout: float = 30.0, process: subprocess.Popen[str] | None = None
) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"process exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class LiveServer:
    """The API under a real uvicorn (optionally several workers) on a free port."""

    def __init__(self, env: Mapping[str, str], workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "uvicorn", "fastapi_server.main:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
        ]  # fmt: skip
        # A file, not a pipe: nobody reads the output until stop(), and a full pipe would
        # block the server on its next log line.
        self.output = tempfile.TemporaryFile("w+")  # noqa: SIM115 -- closed by stop()
        self.printed = ""
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=self.output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for_http(f"{self.url}/_status", process=self.process)
        except BaseException as exc:
            exc.add_note(f"server output:\n{self.stop()}")
            raise

    def stop(self) -> str:
        """SIGTERM, wait, and return what the server printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.output.closed:
            self.output.seek(0)
            self.printed = self.output.read()
            self.output.close()
        return self.printed


def run_script(
    name: str, *args: str, env: Mapping[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/<name>`` from the repository root, as an ops person would."""
    return subprocess.run(
        [sys.executable, f"scripts/{name}", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )
