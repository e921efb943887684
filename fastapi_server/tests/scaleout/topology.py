"""The scaled-out deployment, as real processes on loopback: PgBouncer, nginx, several API
instances (uvicorn), standalone delivery workers, and wrk to load it.

Each part writes its configuration into a temporary folder and runs in the foreground
as a child of the test process, on ports chosen free; nothing of the system's own
services (their configuration, ports or logs) is touched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi_server.tests.helpers.processes import REPO_ROOT, free_port, wait_for_http

# Where Debian puts the binaries (not always on a non-root user's PATH).
SBIN = ("/usr/sbin", "/sbin")


def find_binary(name: str) -> str | None:
    """The path of ``name`` on PATH or in the sbin folders, else None."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def missing_binaries() -> list[str]:
    """Which of the topology's programs are not installed."""
    return [name for name in ("pgbouncer", "nginx", "wrk") if find_binary(name) is None]


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 15.0) -> None:
    """Until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class Child:
    """A program run in the foreground, its output in a file (read by ``output``)."""

    def __init__(self, name: str, command: list[str], env: Mapping[str, str] | None = None):
        self.name = name
        self.command = command
        self.env = {**os.environ, **(env or {})}
        self.log = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the program and wait until it serves (``wait_ready``)."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the program, without waiting."""
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def wait_ready(self) -> None:
        """Until the program serves (nothing to wait for by default)."""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """``signum``, then SIGKILL if it is still running after ``timeout`` seconds."""
        if not self.running:
            return
        self.send(signum)
        if self.wait(timeout) is None:
            self.send(signal.SIGKILL)
            self.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class PgBouncer(Child):
    """PgBouncer in transaction pooling mode before the PostgreSQL at ``pg_port``."""

    def __init__(self, workdir: Path, pg_port: int, user: str, pool_size: int) -> None:
        self.port = free_port()
        self.pool_size = pool_size
        (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
        config = workdir / "pgbouncer.ini"
        run_as = "user = embedded_postgres\n" if _is_root() else ""
        config.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={pg_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {workdir / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 500\n"
            "server_reset_query =\n"
            f"{run_as}"
        )
        for path in (workdir, workdir / "userlist.txt", config):
            path.chmod(0o755 if path.is_dir() else 0o644)
        pgbouncer = find_binary("pgbouncer")
        assert pgbouncer is not None
        super().__init__("pgbouncer", [pgbouncer, str(config)])

    def wait_ready(self) -> None:
        assert self.process is not None
        wait_for_port(self.port, self.process)


class Nginx(Child):
    """nginx balancing round-robin over ``upstreams``; retries a refused connection on the
    next instance, and gives up on an instance for a second after it failed."""

    def __init__(self, workdir: Path, upstreams: list[int]) -> None:
        self.port = free_port()
        servers = "".join(
            f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=1s;\n" for port in upstreams
        )
        config = workdir / "nginx.conf"
        config.write_text(
            "daemon off;\n"
            "master_process off;\n"
            f"pid {workdir / 'nginx.pid'};\n"
            f"error_log {workdir / 'nginx-error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "    access_log off;\n"
            f"    client_body_temp_path {workdir / 'body'};\n"
            f"    proxy_temp_path {workdir / 'proxy'};\n"
            f"    fastcgi_temp_path {workdir / 'fastcgi'};\n"
            f"    uwsgi_temp_path {workdir / 'uwsgi'};\n"
            f"    scgi_temp_path {workdir / 'scgi'};\n"
            "    upstream api {\n"
            f"{servers}"
            "        keepalive 16;\n"
            "    }\n"
            "    server {\n"
            f"        listen 127.0.0.1:{self.port};\n"
            "        location / {\n"
            "            proxy_pass http://api;\n"
            "            proxy_http_version 1.1;\n"
            '            proxy_set_header Connection "";\n'
            "            proxy_set_header Host $host;\n"
            "            proxy_connect_timeout 1s;\n"
            "            proxy_read_timeout 15s;\n"
            "            proxy_next_upstream error timeout;\n"
            "        }\n"
            "    }\n"
            "}\n"
        )
        nginx = find_binary("nginx")
        assert nginx is not None
        super().__init__(
            "nginx",
            [nginx, "-p", str(workdir), "-e", str(workdir / "nginx-error.log"), "-c", str(config)],
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        assert self.process is not None
        wait_for_port(self.port, self.process)


class Instance(Child):
    """One API instance: uvicorn on its own port (kept across restarts)."""

    def __init__(self, number: int, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "uvicorn", "fastapi_server.main:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log",
        ]  # fmt: skip
        super().__init__(f"api{number}", command, env)

    def wait_ready(self) -> None:
        assert self.process is not None
        wait_for_http(f"{self.url}/_ready", timeout=60, process=self.process)


class Worker(Child):
    """A standalone delivery worker."""

    def __init__(self, number: int, env: Mapping[str, str]) -> None:
        command = [sys.executable, "-m", "fastapi_server.apps.notifications.worker"]
        super().__init__(f"worker{number}", command, env)


# Counts the answers by status code; printed by done() as "status <code> <count>" lines.
STATUS_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("status %d %d\\n", status, count))
    end
  end
end
"""


@dataclass
class LoadResult:
    """What wrk saw: answers by status code, and requests that got no answer."""

    statuses: Counter[int]
    socket_errors: dict[str, int]
    output: str

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        """Answers other than 2xx, plus requests without an answer."""
        bad = sum(count for status, count in self.statuses.items() if not 200 <= status < 300)
        return bad + sum(self.socket_errors.values())

    def summary(self) -> str:
        statuses = ", ".join(
            f"{status}: {count}" for status, count in sorted(self.statuses.items())
        )
        errors = ", ".join(f"{kind} {count}" for kind, count in self.socket_errors.items() if count)
        return f"{self.answered} answers ({statuses}); socket errors: {errors or 'none'}"


class Load:
    """wrk against ``url`` until ``finish()`` (SIGINT: wrk stops and reports)."""

    def __init__(self, url: str, workdir: Path, connections: int = 8) -> None:
        script = workdir / "statuses.lua"
        script.write_text(STATUS_SCRIPT)
        wrk = find_binary("wrk")
        assert wrk is not None
        self.process = subprocess.Popen(
            [wrk, "-t2", f"-c{connections}", "-d120s", "--timeout", "5s", "-s", str(script), url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def finish(self) -> LoadResult:
        self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=30)
        statuses: Counter[int] = Counter()
        for status, count in re.findall(r"^status (\d+) (\d+)$", output, re.MULTILINE):
            statuses[int(status)] += int(count)
        errors = re.search(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
        )
        kinds = ("connect", "read", "write", "timeout")
        socket_errors = dict(zip(kinds, map(int, errors.groups()), strict=True)) if errors else {}
        return LoadResult(statuses, socket_errors, output)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
