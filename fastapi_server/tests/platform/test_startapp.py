"""``manage.py startapp``: in a copy of the repository, the generated app passes ruff,
mypy, its own tests and the migration checks with no edit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from fastapi_server.tests.helpers.processes import REPO_ROOT


def _copy_repository(target: Path) -> None:
    """The tracked files as they are now, this environment, and mypy's cache (speed)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(Path(sys.prefix))
    if (REPO_ROOT / ".mypy_cache").is_dir():
        shutil.copytree(REPO_ROOT / ".mypy_cache", target / ".mypy_cache")


def _run(copy: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=copy,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_startapp_generates_an_app_that_passes_every_check(
    tmp_path: Path, scratch_database_url: str
) -> None:
    copy = tmp_path / "repo"
    _copy_repository(copy)

    versions = copy / "fastapi_server/migrations/versions"
    highest = max(int(path.name[:4]) for path in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))
    output = _run(copy, "manage.py", "startapp", "notes")
    assert f"fastapi_server/migrations/versions/{highest + 1:04d}_notes.py" in output
    assert (copy / "fastapi_server/apps/notes/entitlements.py").is_file()
    assert "notes_router" in (copy / "fastapi_server/main.py").read_text()

    _run(copy, "-m", "ruff", "check", ".")
    _run(copy, "-m", "ruff", "format", "--check", ".")
    _run(copy, "-m", "mypy")
    _run(copy, "-c", "from importlinter.cli import lint_imports_command as c; c()")
    _run(
        copy,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "fastapi_server/tests/notes",
        "fastapi_server/tests/platform/test_migrations.py::test_models_match_migrations",
        "fastapi_server/tests/platform/test_migrations.py::test_every_table_and_column_is_commented",
        env={"TEST_DATABASE_URL": scratch_database_url},
    )


def test_startapp_refuses_a_bad_or_taken_name_in_one_line() -> None:
    for name in ("Bad-Name", "users", "class"):
        result = subprocess.run(
            [sys.executable, "manage.py", "startapp", name],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, name
        assert result.stderr.startswith("error: ")
        assert len(result.stderr.strip().splitlines()) == 1
