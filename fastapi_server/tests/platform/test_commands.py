"""manage.py and the local PostgreSQL: clear messages instead of tracebacks."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastapi_server.lib.logging import JSONFormatter, request_id_var
from fastapi_server.tests.helpers.processes import REPO_ROOT, free_port
from init import local_postgres


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_rejects_a_malformed_database_url_in_one_line() -> None:
    result = _manage("serve", env={"DATABASE_URL": "mysql://root@localhost/app"})
    assert result.returncode == 1
    assert result.stderr.startswith("error: DATABASE_URL")
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_serve_says_which_server_it_cannot_reach() -> None:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/app"
    result = _manage("serve", env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert "error: cannot reach postgresql://postgres:***@127.0.0.1" in result.stderr
    assert "s3cret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_manage_without_a_command_prints_usage() -> None:
    result = _manage(env={})
    assert result.returncode == 2
    assert "python3 manage.py serve" in result.stdout


def test_destroy_asks_for_confirmation() -> None:
    result = _manage("destroy", env={"EMBEDDED_PG_DIR": "/nonexistent-for-test"})
    assert result.returncode == 1
    assert "--yes" in result.stderr


def test_missing_postgres_binaries_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("PATH", str(Path("/nonexistent")))
    with pytest.raises(local_postgres.LocalPostgresError, match="Install PostgreSQL"):
        local_postgres.find_bin_dir()


def test_json_log_lines_carry_request_id_and_extras() -> None:
    token = request_id_var.set("req-42")
    try:
        record = logging.getLogger("test").makeRecord(
            "test",
            logging.INFO,
            __file__,
            1,
            "login %s",
            ("failed",),
            None,
            extra={"email": "a@b.c"},
        )
    finally:
        request_id_var.reset(token)
    line = JSONFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "login failed"
    assert entry["request_id"] == "req-42"
    assert entry["email"] == "a@b.c"
    assert entry["level"] == "INFO"
