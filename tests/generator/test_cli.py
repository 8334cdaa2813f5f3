"""`python -m generator`: writing, the staleness check, and refusing bad settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from generator.catalog import TEMPLATES
from generator.cli import main
from generator.project import Project
from tests.conftest import REPO


def test_writes_every_template_and_check_passes(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.yaml" for n in TEMPLATES)
    assert main(["--out", str(tmp_path), "--check"]) == 0


def test_check_names_stale_missing_and_unexpected_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--out", str(tmp_path)])
    (tmp_path / "websocket.yaml").write_text((tmp_path / "websocket.yaml").read_text() + "# edited\n")
    (tmp_path / "old.yaml").write_text("{}\n")
    capsys.readouterr()
    assert main(["--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "websocket.yaml: stale" in err and "old.yaml: not produced" in err
    (tmp_path / "websocket.yaml").unlink()
    assert main(["--out", str(tmp_path), "--check"]) == 1
    assert "websocket.yaml: missing" in capsys.readouterr().err


def test_json_on_request_holds_the_same_template(tmp_path: Path) -> None:
    main(["--out", str(tmp_path / "y")])
    main(["--out", str(tmp_path / "j"), "--format", "json"])
    for name in TEMPLATES:
        as_yaml = yaml.safe_load((tmp_path / "y" / f"{name}.yaml").read_text())
        as_json = json.loads((tmp_path / "j" / f"{name}.json").read_text())
        assert as_yaml == as_json


def test_set_changes_a_default_after_validating_it(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--set", "StageName=beta", "--set", "ThrottlingRateLimit=250"]) == 0
    params = yaml.safe_load((tmp_path / "websocket.yaml").read_text())["Parameters"]
    assert params["StageName"]["Default"] == "beta"
    assert params["ThrottlingRateLimit"]["Default"] == 250


@pytest.mark.parametrize(
    ("setting", "names"),
    [
        ("ThrottlingRateLimit=-1", ["ThrottlingRateLimit", "from 1 to 10000"]),
        ("ThrottlingBurstLimit=lots", ["ThrottlingBurstLimit", "expected a number"]),
        ("StageName=$default", ["StageName", "never '$default'"]),
        ("LogRetentionInDays=31", ["LogRetentionInDays", "one of 1, 3, 5", "3653"]),
        ("LoggingLevel=DEBUG", ["LoggingLevel", "OFF, ERROR, INFO"]),
        ("NoSuchThing=1", ["NoSuchThing", "known:", "StageName"]),
    ],
)
def test_bad_settings_name_the_setting_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, names: list[str]
) -> None:
    out = tmp_path / "out"
    assert main(["--out", str(out), "--set", setting]) == 2
    err = capsys.readouterr().err
    for fragment in names:
        assert fragment in err
    assert "Nothing was written" in err
    assert not out.exists()


def test_unknown_option_and_template_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--out", str(tmp_path / "o"), "--frobnicate"])
    assert raised.value.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "o"), "--only", "nope"]) == 2
    assert "known: " in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_committed_templates_are_up_to_date() -> None:
    """The same gate CI runs: `python -m generator --check` against templates_out/."""
    result = subprocess.run([sys.executable, "-m", "generator", "--check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("argv", [["--format", "json"], ["--set", "StageName=beta"]])
def test_templates_out_takes_only_the_committed_yaml(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in Project.find().templates_out.iterdir())
    assert main(argv) == 2
    assert "write JSON or other defaults elsewhere with --out" in capsys.readouterr().err
    assert sorted(p.name for p in Project.find().templates_out.iterdir()) == before


@pytest.mark.parametrize("value", ["nan", "256.5", "inf"])
def test_set_refuses_what_is_not_a_whole_number(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--set", f"MemorySize={value}", "--out", str(tmp_path)]) == 2
    assert "expected a whole number" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
