"""The package and its lock: the wheel builds offline, the requirements files are uv.lock's."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import manage

REPO_ROOT = Path(__file__).resolve().parents[3]
UV = Path(sys.executable).parent / "uv"


def test_the_wheel_builds_offline_with_the_code_its_data_and_no_tests(tmp_path: Path) -> None:
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"),
            *("--no-index", "--quiet", "--wheel-dir", str(tmp_path)),
        ],
        cwd=REPO_ROOT,
        check=True,
    )
    (wheel,) = tmp_path.glob("fastapi_server-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "fastapi_server/main.py",
        "fastapi_server/migrations/script.py.mako",
        "fastapi_server/apps/users/common_passwords.txt",
        "fastapi_server/apps/notifications/templates/welcome.html",
    ):
        assert needed in names
    assert not [name for name in names if name.startswith("fastapi_server/tests/")]
    metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
    requires = re.findall(
        r"^Requires-Dist: (\S+)", zipfile.ZipFile(wheel).read(metadata).decode(), re.M
    )
    assert {"fastapi>=0.163.2", "prometheus-client>=0.23"} <= set(requires)


@pytest.mark.skipif(not UV.exists(), reason="uv is installed with the dev requirements")
def test_the_requirements_files_are_exported_from_an_up_to_date_lock() -> None:
    subprocess.run([str(UV), "lock", "--check", "--offline", "-q"], cwd=REPO_ROOT, check=True)
    for name, options in manage.EXPORTS.items():
        exported = subprocess.run(
            [str(UV), "export", "--frozen", "--no-emit-project", "--no-header", "-q", *options],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        text = (REPO_ROOT / name).read_text()
        assert text == manage.EXPORT_HEADER + exported, f"{name}: run `python3 manage.py lock`"
        packages = re.split(r"\n(?=[A-Za-z])", text.split("\n", 2)[2])
        assert all("--hash=sha256:" in package for package in packages)
