"""The commands behind ``manage.py``; they run inside the project's virtual environment."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from types import FrameType

from init.local_postgres import DEFAULT_DATABASE, REPO_ROOT, LocalPostgres, LocalPostgresError


class _Stop(Exception):
    """SIGTERM, turned into an exception so that clean-up code runs."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def serve(argv: list[str]) -> int:
    """Bootstrap the database and serve the API until Ctrl-C or SIGTERM."""
    argparse.ArgumentParser(prog="manage.py serve", description=serve.__doc__).parse_args(argv)
    import asyncpg
    import uvicorn
    from pydantic import ValidationError

    from fastapi_server.config import describe_settings_error, get_settings
    from fastapi_server.lib.database_url import redact
    from init.bootstrap import bootstrap

    signal.signal(signal.SIGTERM, _raise_stop)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    server: LocalPostgres | None = None
    started = False
    url: str | None = None
    try:
        url = get_settings().database_url
        if url is None:
            server = LocalPostgres()
            started = server.start()
            url = server.url(DEFAULT_DATABASE)
        bootstrap(url)
        os.environ["DATABASE_URL"] = url  # the workers read it
        get_settings.cache_clear()
        if workers > 1 and get_settings().metrics_enabled:
            _give_workers_a_metrics_directory()
        _print_banner(host, port, redact(url), server)
        uvicorn.run(
            "fastapi_server.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=get_settings().env != "production",
        )
    except (KeyboardInterrupt, _Stop):
        pass
    except ValidationError as exc:
        print(f"error: {describe_settings_error(exc)}", file=sys.stderr)
        return 1
    except LocalPostgresError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        where = redact(url) if url else "the database"
        print(f"error: cannot reach {where}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a failed migration or seed: say so in a line, not a traceback
        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"error: preparing the database failed: {type(exc).__name__}: {first_line}",
            file=sys.stderr,
        )
        return 1
    finally:
        if started and server is not None:
            print("Stopping the embedded PostgreSQL ...", flush=True)
            server.stop()
    return 0


def _give_workers_a_metrics_directory() -> None:
    """Several workers count into one directory (prometheus-client's multiprocess mode); a
    fresh one per start unless PROMETHEUS_MULTIPROC_DIR names one, in memory where the
    system has /dev/shm (on a disk, writes to its mapped files stall during write-back)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile

        shm = "/dev/shm"  # noqa: S108 -- mkdtemp below makes a private directory
        shm_or_default = shm if os.path.isdir(shm) else None
        directory = tempfile.mkdtemp(prefix="fastapi-metrics-", dir=shm_or_default)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def _print_banner(host: str, port: int, url: str, server: LocalPostgres | None) -> None:
    psql = server.psql_command() if server else f"psql {url}"
    print(
        f"\n  API      http://{host}:{port}   (OpenAPI docs: http://{host}:{port}/docs)\n"
        f"  Database {url}\n"
        f"  psql     {psql}\n"
        "  Stop with Ctrl-C.\n",
        flush=True,
    )


APT_TIMEOUT_S = 180  # per apt-get call
# System programs some tests need (Debian packages), and the tests skipped without them.
TEST_PACKAGES = {
    "wrk": ("wrk", "the benchmark smoke test and the scale-out tests"),
    "pgbouncer": ("pgbouncer", "the scale-out tests"),
    "nginx": ("nginx", "the scale-out tests"),
}
SBIN = ("/usr/sbin", "/sbin")  # where Debian puts pgbouncer and nginx


def _installed(program: str) -> bool:
    return bool(shutil.which(program) or shutil.which(program, path=os.pathsep.join(SBIN)))


def _ensure_test_packages() -> None:
    """Install the system programs the tests use (``TEST_PACKAGES``) where this user can
    (root with apt-get); the tests that need a missing one are skipped.

    A fresh CI machine is root on Debian, so there the whole suite runs. Only the package
    is installed: its service is never started (the tests run their own processes).
    """
    missing = {name: why for name, why in TEST_PACKAGES.items() if not _installed(name)}
    if not missing:
        return
    packages = sorted(package for package, _ in missing.values())
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        for name, (package, needed_by) in missing.items():
            print(f"{name} is missing: {needed_by} will be skipped (apt-get install {package})")
        return
    print(f"Installing {', '.join(packages)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt_get(*args: str) -> bool:
        try:
            done = subprocess.run(
                ["apt-get", "-qq", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=APT_TIMEOUT_S,  # no network, or apt locked: do not hang the tests
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    installed = apt_get("install", "-y", *packages)
    if not installed:  # the package lists may be missing (a fresh machine): update, again
        installed = apt_get("update") and apt_get("install", "-y", *packages)
    if not installed:
        print(f"Installing {', '.join(packages)} failed: the tests needing them will be skipped")


# pip-audit's default advisory source: PyPI's JSON API, one release at a time.
AUDIT_PROBE_URL = "https://pypi.org/pypi/pip-audit/{version}/json"
AUDIT_PROBE_TIMEOUT_S = 5


def _advisory_source_answers() -> bool:
    """Whether PyPI answers the question pip-audit asks, for pip-audit's own release."""
    import json
    import urllib.request
    from importlib.metadata import version

    url = AUDIT_PROBE_URL.format(version=version("pip-audit"))
    try:
        with urllib.request.urlopen(url, timeout=AUDIT_PROBE_TIMEOUT_S) as answer:  # noqa: S310 -- https, from a constant
            return "vulnerabilities" in json.load(answer)
    except (OSError, ValueError):
        return False


def _audit_command(python: str) -> list[str] | None:
    """pip-audit over the locked dev requirements (they include the runtime ones), or None
    with a one-line notice when its advisory source cannot be reached."""
    if not _advisory_source_answers():
        print("pip-audit: skipped, its advisory source (PyPI's JSON API) cannot be reached")
        return None
    requirements = str(REPO_ROOT / "requirements-dev.txt")
    audit = [python, "-m", "pip_audit", "--require-hashes", "--disable-pip", "--progress-spinner"]
    return [*audit, "off", "-r", requirements]


def test(argv: list[str]) -> int:
    """ruff (lint and format), mypy, the import contracts (lint-imports: the layers in
    pyproject.toml), pip-audit, then pytest; non-zero when any of them fails."""
    python = sys.executable
    _ensure_test_packages()
    lint_imports = "from importlinter.cli import lint_imports_command as c; c()"
    checks = {
        "ruff check": [python, "-m", "ruff", "check", "."],
        "ruff format --check": [python, "-m", "ruff", "format", "--check", "."],
        "mypy": [python, "-m", "mypy"],
        "lint-imports": [python, "-c", lint_imports],
    }
    audit = _audit_command(python)
    if audit:
        checks["pip-audit"] = audit
    failed = [name for name, check in checks.items() if subprocess.call(check, cwd=REPO_ROOT)]
    pytest_status = subprocess.call([python, "-m", "pytest", *argv], cwd=REPO_ROOT)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return pytest_status


def bootstrap(argv: list[str]) -> int:
    """Create, migrate and seed the database, then exit."""
    argparse.ArgumentParser(prog="manage.py bootstrap", description=bootstrap.__doc__).parse_args(
        argv
    )
    from init.bootstrap import main

    main()
    return 0


def startapp(argv: list[str]) -> int:
    """Generate a new app (models, migration, core, entitlements, API, tests), registered."""
    parser = argparse.ArgumentParser(prog="manage.py startapp", description=startapp.__doc__)
    parser.add_argument("name", help="the app's name: lowercase letters, digits and _")
    args = parser.parse_args(argv)
    from init.startapp import StartAppError, start_app

    try:
        written = start_app(REPO_ROOT, args.name)
    except StartAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Created the app {args.name}: " + ", ".join(written))
    return 0


def destroy(argv: list[str]) -> int:
    """Delete the database: DATABASE_URL's (dropped) or the local server's data folder."""
    parser = argparse.ArgumentParser(prog="manage.py destroy", description=destroy.__doc__)
    parser.add_argument("--yes", action="store_true", help="really delete everything")
    args = parser.parse_args(argv)
    from fastapi_server.config import get_settings

    url = get_settings().database_url  # the environment, else .env
    target = (
        f"the database of {url}" if url else f"the local PostgreSQL in {LocalPostgres().base_dir}"
    )
    if not args.yes:
        print(f"This deletes {target} and all its data. Run again with --yes.", file=sys.stderr)
        return 1
    if url:
        import asyncio

        from init.bootstrap import drop_database

        asyncio.run(drop_database(url))
    else:
        server = LocalPostgres()
        server.stop()
        shutil.rmtree(server.base_dir, ignore_errors=True)
    print(f"Deleted {target}.")
    return 0
