"""``manage.py startapp NAME``: a new app with the standard files, registered everywhere.

It writes ``fastapi_server/apps/NAME/`` (settings, models, schemas, errors, entitlements,
core, ``database/postgres.py``, ``api/api.py``), the next numbered migration, and
``fastapi_server/tests/NAME/``, then registers the app in ``fastapi_server/models.py``,
``resources/database/databases.py`` and ``main.py``. The starter app keeps items owned by
their creator (list, create, read, delete); it passes ruff, mypy and its own tests as
generated, and is meant to be reshaped into the real thing. The templates are the
``.tmpl`` files of ``init/app_template/``.
"""

from __future__ import annotations

import keyword
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{1,29}")
TEMPLATES = Path(__file__).resolve().parent / "app_template"
# Names that would shadow a package of the platform or read badly as a URL prefix.
RESERVED = frozenset({"apps", "lib", "resources", "tests", "migrations", "api", "core", "test"})

# template file -> where it goes, under the repository root ({name}: the app's name)
FILES = {
    "__init__.py.tmpl": "fastapi_server/apps/{name}/__init__.py",
    "settings.py.tmpl": "fastapi_server/apps/{name}/settings.py",
    "models.py.tmpl": "fastapi_server/apps/{name}/models.py",
    "schemas.py.tmpl": "fastapi_server/apps/{name}/schemas.py",
    "errors.py.tmpl": "fastapi_server/apps/{name}/errors.py",
    "core.py.tmpl": "fastapi_server/apps/{name}/core.py",
    "entitlements.py.tmpl": "fastapi_server/apps/{name}/entitlements.py",
    "database_init.py.tmpl": "fastapi_server/apps/{name}/database/__init__.py",
    "postgres.py.tmpl": "fastapi_server/apps/{name}/database/postgres.py",
    "api_init.py.tmpl": "fastapi_server/apps/{name}/api/__init__.py",
    "api.py.tmpl": "fastapi_server/apps/{name}/api/api.py",
    "tests_init.py.tmpl": "fastapi_server/tests/{name}/__init__.py",
    "test_api.py.tmpl": "fastapi_server/tests/{name}/test_api.py",
}
MIGRATIONS = "fastapi_server/migrations/versions"
MODELS = "fastapi_server/models.py"
DATABASES = "fastapi_server/resources/database/databases.py"
MAIN = "fastapi_server/main.py"


class StartAppError(Exception):
    """Why the app cannot be generated (one line for the user)."""


@dataclass(frozen=True)
class NewApp:
    """What the templates are filled with."""

    name: str
    revision: str
    down_revision: str

    @property
    def camel(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))

    def substitutions(self) -> dict[str, str]:
        return {
            "name": self.name,
            "Camel": self.camel,
            "prefix": "/" + self.name.replace("_", "-"),
            "env_prefix": self.name.upper() + "_",
            "revision": self.revision,
            "down_revision": self.down_revision,
        }


def check_name(root: Path, name: str) -> None:
    """``StartAppError`` unless ``name`` makes a new, valid app."""
    if not NAME_PATTERN.fullmatch(name) or name.endswith("_") or "__" in name:
        raise StartAppError(
            f"{name!r} is not an app name: 2 to 30 characters, lowercase letters, digits "
            "and single underscores, starting with a letter"
        )
    if keyword.iskeyword(name) or name in RESERVED:
        raise StartAppError(f"{name!r} is reserved; choose another name")
    if (root / "fastapi_server" / "apps" / name).exists():
        raise StartAppError(f"fastapi_server/apps/{name} exists already")
    if (root / "fastapi_server" / "tests" / name).exists():
        raise StartAppError(f"fastapi_server/tests/{name} exists already")


def next_revision(root: Path) -> tuple[str, str]:
    """The next migration number and the current last one (``0006`` -> ``0007``)."""
    numbers = [int(path.name[:4]) for path in (root / MIGRATIONS).glob("[0-9][0-9][0-9][0-9]_*.py")]
    if not numbers:
        raise StartAppError(f"no numbered migration in {MIGRATIONS}")
    last = max(numbers)
    return f"{last + 1:04d}", f"{last:04d}"


def _render(template: str, app: NewApp) -> str:
    return Template((TEMPLATES / template).read_text()).substitute(app.substitutions())


def _insert_sorted_import(lines: list[str], new_line: str) -> None:
    """Add ``new_line`` to the block of ``from fastapi_server.apps.`` imports, keeping the
    block in module order (as ruff's isort wants it)."""
    indexes = [i for i, line in enumerate(lines) if line.startswith("from fastapi_server.apps.")]
    if not indexes:
        raise StartAppError("no app import found to register the new app beside")
    start, end = indexes[0], indexes[-1] + 1
    block = [*lines[start:end], new_line]
    lines[start:end] = sorted(block, key=lambda line: line.split()[1])


def _register_model(root: Path, app: NewApp) -> None:
    path = root / MODELS
    lines = path.read_text().splitlines()
    _insert_sorted_import(
        lines, f"from fastapi_server.apps.{app.name} import models as {app.name}_models"
    )
    text = "\n".join(lines) + "\n"
    match = re.search(r"__all__ = \[(.*?)\]", text, flags=re.DOTALL)
    if match is None:
        raise StartAppError(f"no __all__ list in {MODELS}")
    names = [*re.findall(r'"([^"]+)"', match.group(1)), f"{app.name}_models"]
    entries = "".join(f'    "{name}",\n' for name in sorted(names))
    path.write_text(text[: match.start()] + f"__all__ = [\n{entries}]" + text[match.end() :])


def _register_database(root: Path, app: NewApp) -> None:
    path = root / DATABASES
    lines = path.read_text().splitlines()
    _insert_sorted_import(
        lines, f"from fastapi_server.apps.{app.name}.database.postgres import {app.camel}DB"
    )
    lines += [
        "",
        "    @cached_property",
        f"    def {app.name}(self) -> {app.camel}DB:",
        f"        return {app.camel}DB(self.session)",
    ]
    path.write_text("\n".join(lines) + "\n")


def _register_router(root: Path, app: NewApp) -> None:
    path = root / MAIN
    lines = path.read_text().splitlines()
    _insert_sorted_import(
        lines, f"from fastapi_server.apps.{app.name}.api.api import router as {app.name}_router"
    )
    try:
        start = lines.index("ROUTERS = (")
        end = lines.index(")", start)
    except ValueError:
        raise StartAppError(f"no ROUTERS = (...) tuple in {MAIN}") from None
    lines.insert(end, f"    {app.name}_router,")
    path.write_text("\n".join(lines) + "\n")


def start_app(root: Path, name: str) -> list[str]:
    """Generate and register the app ``name`` under ``root``; the paths written."""
    check_name(root, name)
    revision, down_revision = next_revision(root)
    app = NewApp(name, revision, down_revision)
    written = []
    for template, target in FILES.items():
        path = root / target.format(name=name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_render(template, app))
        written.append(target.format(name=name))
    migration = f"{MIGRATIONS}/{revision}_{name}.py"
    (root / migration).write_text(_render("migration.py.tmpl", app))
    written.append(migration)
    _register_model(root, app)
    _register_database(root, app)
    _register_router(root, app)
    written += [MODELS, DATABASES, MAIN]
    _format(root, written)
    return written


def _format(root: Path, paths: list[str]) -> None:
    """ruff's import order and format on what was written (lines wrap by the name's length)."""
    ruff = [sys.executable, "-m", "ruff"]
    for command in (["check", "--fix", "--select", "I", "--quiet"], ["format", "--quiet"]):
        result = subprocess.run(
            [*ruff, *command, *paths], cwd=root, capture_output=True, text=True, check=False
        )
        if result.returncode:
            raise StartAppError(f"ruff {command[0]} failed: {result.stderr.strip()}")
