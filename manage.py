#!/usr/bin/env python3
"""Project commands. Needs only Python 3.11+; sets up ``.venv`` itself.

python3 manage.py serve         run the API (embedded PostgreSQL unless DATABASE_URL is set)
python3 manage.py test [ARGS]   lint, type-check and run the test suite (ARGS go to pytest)
python3 manage.py bootstrap     create, migrate and seed the database, then exit
python3 manage.py startapp NAME generate a new app (with migration and tests), registered
python3 manage.py destroy --yes stop and delete the local database (or drop DATABASE_URL's)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
REQUIREMENTS = {"runtime": ROOT / "requirements.txt", "dev": ROOT / "requirements-dev.txt"}
COMMANDS = ("serve", "test", "bootstrap", "startapp", "destroy")


def _requirements_digest(kind: str) -> str:
    digest = hashlib.sha256()
    for path in (REQUIREMENTS["runtime"], REQUIREMENTS[kind]):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_venv(kind: str) -> None:
    """Create ``.venv`` and install the pinned requirements when they changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 -- this file runs under any python3
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    if not VENV_PYTHON.exists():
        print("Creating the virtual environment in .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / f".installed-{kind}"
    wanted = _requirements_digest(kind)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"Installing {REQUIREMENTS[kind].name} into .venv ...", flush=True)
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS[kind])], check=True)
    stamp.write_text(wanted)


def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    command = sys.argv[1]
    if not _in_venv():
        try:
            ensure_venv("dev" if command in ("test", "startapp") else "runtime")
        except subprocess.CalledProcessError:
            sys.exit("Installing the requirements failed (see above).")
        os.chdir(ROOT)
        args = [str(VENV_PYTHON), str(ROOT / "manage.py"), *sys.argv[1:]]
        if sys.platform == "win32":
            sys.exit(subprocess.call(args))
        os.execv(args[0], args)  # noqa: S606 -- same process: Ctrl-C and SIGTERM reach the real command
    sys.path.insert(0, str(ROOT))
    from init import commands

    sys.exit(getattr(commands, command)(sys.argv[2:]))


if __name__ == "__main__":
    main()
