"""The whole scaled-out topology, started once for the module (see ``topology.py``):

    wrk -> nginx -> 3 API instances -> PgBouncer (transaction mode) -> PostgreSQL
                    2 delivery workers -> PgBouncer          aiosmtpd <- workers
    LISTEN connections (flag cache, workers) -> PostgreSQL directly

The measured figures are printed at the end of the run (terminal summary).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fastapi_server.lib.database_url import database_name
from fastapi_server.tests.conftest import reset_database
from fastapi_server.tests.helpers.mail import SMTPCatcher
from fastapi_server.tests.scaleout.topology import (
    Instance,
    Nginx,
    PgBouncer,
    Worker,
    find_binary,
    missing_binaries,
)
from init.local_postgres import LocalPostgres

INSTANCES = 3
WORKERS = 2
DB_POOL_SIZE = 4  # per instance: 3 x 4 = 12 client connections to PgBouncer
PGBOUNCER_POOL_SIZE = 5  # server connections PgBouncer opens for the app
DRAIN_SECONDS = 1.0

FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("scale-out figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@dataclass
class Topology:
    """The running parts, and how to reach PostgreSQL past them (psql)."""

    direct_url: str
    pooled_url: str
    psql_path: str
    pgbouncer: PgBouncer
    nginx: Nginx
    instances: list[Instance]
    workers: list[Worker]
    smtp: SMTPCatcher
    workdir: Path
    figures: list[str] = field(default_factory=lambda: FIGURES)

    def psql(self, sql: str) -> str:
        """Run ``sql`` with psql straight on PostgreSQL; its unaligned output."""
        done = subprocess.run(
            [self.psql_path, self.direct_url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-c", sql],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture(scope="module")
async def _reset_after(engine: AsyncEngine, database_url: str) -> AsyncIterator[None]:
    """What the topology committed is emptied afterwards (after the processes stopped)."""
    yield
    await reset_database(engine, database_url)


@pytest.fixture(scope="module")
def topology(
    pg_server: LocalPostgres | None, database_url: str, _reset_after: None
) -> Iterator[Topology]:
    """Start every part, in dependency order; stop them all at the end."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install pgbouncer nginx wrk)")
    psql = find_binary("psql") or (str(pg_server.bin_dir / "psql") if pg_server else None)
    if psql is None:
        pytest.skip("needs psql")
    workdir = Path(tempfile.mkdtemp(prefix="fs-scaleout-"))
    direct = urlsplit(database_url)
    assert direct.port is not None
    assert direct.username is not None
    pgbouncer = PgBouncer(workdir, direct.port, direct.username, PGBOUNCER_POOL_SIZE)
    pooled_url = (
        f"postgresql://{direct.username}@127.0.0.1:{pgbouncer.port}/{database_name(database_url)}"
    )
    smtp = SMTPCatcher().start()
    env = {
        "ENV": "test",
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": pooled_url,
        "DATABASE_LISTEN_URL": database_url,
        "DB_PGBOUNCER": "true",
        "DB_POOL_SIZE": str(DB_POOL_SIZE),
        "DB_POOL_TIMEOUT": "3",
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "NOTIFICATIONS_WORKER_IN_PROCESS": "false",
        "NOTIFICATIONS_TRANSPORT": "smtp",
        "NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
        "NOTIFICATIONS_SMTP_PORT": str(smtp.port),
        "NOTIFICATIONS_SMTP_TLS": "none",
        "NOTIFICATIONS_POLL_SECONDS": "1",
        "USERS_RETURN_VERIFICATION_TOKENS": "false",
        "USERS_ARGON2_TIME_COST": "1",
        "USERS_ARGON2_MEMORY_KIB": "1024",
        "USERS_ARGON2_PARALLELISM": "1",
        # Every request comes from 127.0.0.1: the per-IP limit would refuse the load.
        "USERS_RATE_LIMIT_PER_IP": "1000000000",
    }
    instances = [Instance(number, env) for number in range(1, INSTANCES + 1)]
    workers = [Worker(number, env) for number in range(1, WORKERS + 1)]
    nginx = Nginx(workdir, [instance.port for instance in instances])
    parts = [pgbouncer, *instances, *workers, nginx]
    try:
        pgbouncer.start()
        for part in (*instances, *workers):  # started side by side: start-up is mostly imports
            part.launch()
        for part in (*instances, *workers):
            part.wait_ready()
        nginx.start()
        yield Topology(
            database_url, pooled_url, psql, pgbouncer, nginx, instances, workers, smtp, workdir
        )
    except BaseException:
        for part in parts:
            print(f"--- {part.name} ---\n{part.output()[-3000:]}")
        raise
    finally:
        for part in reversed(parts):  # all at once: the instances drain side by side
            part.send(signal.SIGTERM)
        for part in reversed(parts):
            part.stop()
            part.log.unlink(missing_ok=True)
        smtp.stop()
        shutil.rmtree(workdir, ignore_errors=True)
