"""The cfn-lint gate: clean on what we generate, failing on a deliberately broken template."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

# The project's cfn-lint (beside this interpreter), not whichever is first on PATH.
BESIDE = Path(sys.executable).with_name("cfn-lint")
CFN_LINT = str(BESIDE) if BESIDE.exists() else shutil.which("cfn-lint")
pytestmark = pytest.mark.skipif(CFN_LINT is None, reason="cfn-lint is installed by the dev extra")


def lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    assert CFN_LINT
    return subprocess.run(
        [CFN_LINT, "--config-file", str(REPO / ".cfnlintrc"), *map(str, paths)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip


def test_generated_templates_are_clean(tmp_path: Path, rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        (tmp_path / name).write_text(text)
    result = lint(*sorted(tmp_path.iterdir()))
    assert result.returncode == 0, result.stdout


def _broken(tmp_path: Path, rendered: dict[str, str], mutate: Callable[[dict[str, Any]], None]) -> Path:
    template = yaml.safe_load(rendered["websocket.yaml"])
    mutate(template)
    path = tmp_path / "websocket.yaml"
    path.write_text(yaml.safe_dump(template))
    return path


def test_gate_fails_on_an_error(tmp_path: Path, rendered: dict[str, str]) -> None:
    path = _broken(tmp_path, rendered, lambda t: t["Resources"]["Stage"]["DependsOn"].append("NoSuchRoute"))
    result = lint(path)
    assert result.returncode != 0
    assert "E3005" in result.stdout and "NoSuchRoute" in result.stdout


def test_gate_fails_on_a_warning_alone(tmp_path: Path, rendered: dict[str, str]) -> None:
    def unused_parameter(template: dict[str, Any]) -> None:
        template["Parameters"]["Unused"] = {
            "Type": "String",
            "Default": "x",
            "Description": "unused",
        }

    result = lint(_broken(tmp_path, rendered, unused_parameter))
    assert result.returncode != 0
    assert "W2001" in result.stdout and "Unused" in result.stdout
