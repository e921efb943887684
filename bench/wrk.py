"""wrk, the load generator: a Lua script per load, results read back as numbers.

Every script ends with a ``done()`` that prints one ``BENCH_RESULT`` line (requests,
duration, errors by kind, latency percentiles in microseconds), so nothing depends on
wrk's human-readable output.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

WRK_MISSING = (
    "wrk is not installed: apt-get install wrk (Debian/Ubuntu), brew install wrk (macOS), "
    "or build it from https://github.com/wg/wrk"
)
THREADS = 2
CONNECTIONS = 32
# A login hashes a password: far slower than wrk's default 2 s timeout would allow.
REQUEST_TIMEOUT_S = 10
_THREAD_DONE = "BENCH_THREAD_DONE"
_RESULT = re.compile(r"^BENCH_RESULT (.+)$", re.MULTILINE)

_DONE_LUA = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %d %d %d %d %d %.1f %.1f %.1f %.1f\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(99.0), latency.mean, latency.max))
end
"""


class WrkError(RuntimeError):
    """wrk failed or printed no result."""


def wrk_path() -> str | None:
    """Where wrk is, or None."""
    return shutil.which("wrk")


@dataclass(frozen=True)
class Request:
    """One HTTP request wrk sends."""

    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None


@dataclass(frozen=True)
class Load:
    """What a wrk run sends: fixed requests (in turn), or logins of random users.

    ``logins`` sends ``POST /login`` as a form for ``email_pattern % i`` with a random
    ``i`` below ``population`` (every user has the same password). ``stop_after`` ends
    each thread after that many responses (the run then lasts less than its duration).
    """

    requests: tuple[Request, ...] = ()
    logins: LoginLoad | None = None
    stop_after: int | None = None


@dataclass(frozen=True)
class LoginLoad:
    """Logins of random users: form posts of ``email(i)`` for ``0 <= i < population``."""

    path: str
    population: int
    password: str
    email_prefix: str = "bench"
    digits: int = 7
    email_domain: str = "bench.example.com"

    def email(self, index: int) -> str:
        """The email of user number ``index`` (the seeding uses the same)."""
        return f"{self.email_prefix}{index:0{self.digits}d}@{self.email_domain}"


@dataclass(frozen=True)
class WrkResult:
    """One measured interval."""

    requests: int
    duration_s: float
    socket_errors: int  # connect, read, write errors and timeouts
    http_errors: int  # responses with a status of 400 or more
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    # CPU seconds the server's processes used during the interval (None: not measured).
    server_cpu_s: float | None = None

    @property
    def cpu_us_per_request(self) -> float | None:
        """The server's CPU time per request, in µs (all its processes)."""
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s / self.requests * 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.http_errors


def _lua_string(value: str) -> str:
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"not a plain ASCII string for Lua: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lua_headers(headers: Mapping[str, str]) -> str:
    items = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    return "{" + items + "}"


def _lua_request(request: Request) -> str:
    body = _lua_string(request.body) if request.body is not None else "nil"
    return (
        f"wrk.format({_lua_string(request.method)}, {_lua_string(request.path)}, "
        f"{_lua_headers(request.headers)}, {body})"
    )


def lua_script(load: Load) -> str:
    """The Lua script that makes wrk send ``load`` and print a BENCH_RESULT line."""
    parts: list[str] = []
    if load.logins is not None:
        parts.append(_login_lua(load.logins))
    elif len(load.requests) == 1 and load.stop_after is None:
        # Static: wrk builds the request once (the fastest client, as for the baseline).
        (only,) = load.requests
        parts.append(
            f"wrk.method = {_lua_string(only.method)}\n"
            f"wrk.path = {_lua_string(only.path)}\n"
            f"wrk.headers = {_lua_headers(only.headers)}\n"
            + (f"wrk.body = {_lua_string(only.body)}\n" if only.body is not None else "")
        )
    else:
        formatted = "\n".join(
            f"  requests[{i + 1}] = {_lua_request(r)}" for i, r in enumerate(load.requests)
        )
        parts.append(
            "local requests = {}\nlocal turn = 0\n"
            f"function init(args)\n{formatted}\nend\n"
            "function request()\n  turn = turn % #requests + 1\n  return requests[turn]\nend\n"
        )
    if load.stop_after is not None:
        parts.append(
            f"local answered = 0\nfunction response(status, headers, body)\n"
            f"  answered = answered + 1\n"
            f"  if answered == {int(load.stop_after)} then\n"
            f"    io.write('{_THREAD_DONE}\\n')\n    io.flush()\n    wrk.thread:stop()\n"
            "  end\nend\n"
        )
    parts.append(_DONE_LUA)
    return "\n".join(parts)


def _login_lua(logins: LoginLoad) -> str:
    head = "username=" + quote(logins.email_prefix, safe="")
    tail = (
        quote("@" + logins.email_domain, safe="") + "&password=" + quote(logins.password, safe="")
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return (
        "local counter = 0\n"
        "function setup(thread)\n  counter = counter + 1\n  thread:set('seed', counter)\nend\n"
        "function init(args)\n  math.randomseed(os.time() * 1000 + (seed or 0))\nend\n"
        "function request()\n"
        f"  local i = math.random(0, {int(logins.population) - 1})\n"
        f"  local body = {_lua_string(head)} .. string.format('%0{int(logins.digits)}d', i)"
        f" .. {_lua_string(tail)}\n"
        f"  return wrk.format('POST', {_lua_string(logins.path)}, {_lua_headers(headers)}, body)\n"
        "end\n"
    )


def run_wrk(
    base_url: str,
    load: Load,
    duration_s: int,
    *,
    connections: int = CONNECTIONS,
    threads: int = THREADS,
) -> WrkResult:
    """Run wrk against ``base_url`` for at most ``duration_s`` seconds; its figures."""
    return RunningWrk(base_url, load, duration_s, connections=connections, threads=threads).finish()


class RunningWrk:
    """wrk running in the background; ``finish()`` waits and parses its result."""

    def __init__(
        self,
        base_url: str,
        load: Load,
        duration_s: int,
        *,
        connections: int = CONNECTIONS,
        threads: int = THREADS,
    ) -> None:
        wrk = wrk_path()
        if wrk is None:
            raise WrkError(WRK_MISSING)
        self.load = load
        self.threads = threads
        self.duration_s = max(1, duration_s)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-", delete=False) as f:
            f.write(lua_script(load))
        self.script = Path(f.name)
        command = [
            wrk, f"-t{threads}", f"-c{connections}", f"-d{self.duration_s}s",
            f"--timeout={REQUEST_TIMEOUT_S}s", "-s", str(self.script), base_url,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._lines: list[str] = []
        self._threads_done = 0
        self._all_stopped = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line)
            if line.startswith(_THREAD_DONE):
                self._threads_done += 1
                if self._threads_done >= self.threads:
                    self._all_stopped.set()

    def finish(self) -> WrkResult:
        """Wait for wrk (its duration plus a margin) and return its figures.

        wrk waits for its whole duration even when every thread stopped itself (a
        ``stop_after`` load): once they all have, SIGINT makes it report at once.
        """
        try:
            if self.load.stop_after is not None and self._all_stopped.wait(self.duration_s):
                self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=self.duration_s + 30)
            self._reader.join(timeout=5)
        except BaseException:
            self.stop()
            raise
        finally:
            self.script.unlink(missing_ok=True)
        return parse_result("".join(self._lines))

    def stop(self) -> None:
        """Kill wrk if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.script.unlink(missing_ok=True)


def parse_result(output: str) -> WrkResult:
    """The figures of a ``BENCH_RESULT`` line in wrk's output."""
    match = _RESULT.search(output)
    if match is None:
        raise WrkError("wrk printed no result:\n" + output.strip()[-2000:])
    fields: Sequence[str] = match.group(1).split()
    requests, duration, connect, read, write, status, timeout = (int(v) for v in fields[:7])
    p50, p99, mean, maximum = (float(v) / 1000 for v in fields[7:11])
    return WrkResult(
        requests=requests,
        duration_s=duration / 1e6,
        socket_errors=connect + read + write + timeout,
        http_errors=status,
        p50_ms=p50,
        p99_ms=p99,
        mean_ms=mean,
        max_ms=maximum,
    )
