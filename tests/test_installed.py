"""The package as a user installs it: a wheel in a clean virtualenv, run from a project folder
outside the checkout (and with --project-dir from elsewhere), never reading site-packages for
the project's files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.ports import free_port

pytestmark = pytest.mark.slow  # builds a wheel and a virtualenv


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the virtualenv's bin folder, a project folder holding the project's files)."""
    work = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(work / "dist"),
                    str(REPO)], check=True, capture_output=True)  # fmt: skip
    (wheel,) = (work / "dist").glob("*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    subprocess.run([str(work / "venv" / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    project = work / "project"
    for folder in ("environments", "templates_out", "requirements", "handlers"):
        shutil.copytree(REPO / folder, project / folder)
    return work / "venv" / "bin", project


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "AWS_ACCESS_KEY_ID": "x",
                               "AWS_SECRET_ACCESS_KEY": "x"})  # fmt: skip


def test_both_console_scripts_work_from_a_project_folder(installed: tuple[Path, Path]) -> None:
    bin_dir, project = installed
    assert run([str(bin_dir / "cc-websocket-rollout"), "--help"], project).returncode == 0
    check = run([str(bin_dir / "cc-websocket-generate"), "--check"], project)
    assert check.returncode == 0 and str(project / "templates_out") in check.stdout
    deploy = run([str(bin_dir / "cc-websocket-rollout"), "deploy", "--env", "rehearsal", "--yes", "--json",
                  "--endpoint-url", f"http://127.0.0.1:{free_port()}"], project)  # fmt: skip
    # Settings and fresh templates were found in the project folder; the stop is the network.
    assert deploy.returncode == 2, deploy.stderr
    assert json.loads(deploy.stdout)["error"]["kind"] == "network"


def test_project_dir_from_elsewhere_and_what_an_installation_lacks(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    bin_dir, project = installed
    check = run([str(bin_dir / "cc-websocket-generate"), "--project-dir", str(project), "--check"], tmp_path)
    assert check.returncode == 0
    wrong = run([str(bin_dir / "cc-websocket-rollout"), "--project-dir", str(tmp_path), "rehearse"], tmp_path)
    assert wrong.returncode != 0 and "no templates_out/ there" in wrong.stderr
    rehearse = run([str(bin_dir / "cc-websocket-rollout"), "rehearse"], project)
    assert rehearse.returncode == 2 and "pip install 'careconnect-websocket[emulator]'" in rehearse.stderr
