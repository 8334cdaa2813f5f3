"""The pack as another team meets it: the cfn-lint command with the pack's folder, from a directory
of theirs, on the documented CDK and SAM WebSocket examples (tests/lint/fixtures/SOURCES.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.lint.conftest import FIXTURES, PACK, PACK_IDS, pack_findings

# The project's cfn-lint (beside this interpreter), not whichever is first on PATH.
BESIDE = Path(sys.executable).with_name("cfn-lint")
CFN_LINT = str(BESIDE) if BESIDE.exists() else shutil.which("cfn-lint")
CDK = FIXTURES / "cdk-websocket-api-integ.template.json"
SAM = FIXTURES / "sam-simple-websockets-chat-app.yaml"


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CFN_LINT, "cfn-lint is installed by the dev extra"
    return subprocess.run([CFN_LINT, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def rule_ids(output: str) -> Counter[str]:
    return Counter(line.split()[0] for line in output.splitlines() if line.startswith(PACK_IDS))


def test_what_the_pack_finds_in_the_cdk_and_sam_examples() -> None:
    """CDK's invoke permissions are open to every stage; SAM's have no SourceArn at all."""
    cdk = pack_findings(CDK)
    assert Counter(rule for rule, _ in cdk) == {"W9108": 4}
    assert all("any stage of the API" in message for _, message in cdk)
    assert Counter(rule for rule, _ in pack_findings(SAM)) == {"E9107": 3}


def test_the_command_line_with_the_pack_folder_fails_on_the_sam_example(tmp_path: Path) -> None:
    with_pack = cli(tmp_path, "--append-rules", str(PACK), "--", str(SAM))
    assert rule_ids(with_pack.stdout) == {"E9107": 3}
    assert with_pack.returncode & 2, with_pack.stdout  # cfn-lint's exit code is a bit mask: 2 errors, 4 warnings


def test_the_one_line_in_another_teams_cfnlintrc(tmp_path: Path) -> None:
    (tmp_path / ".cfnlintrc").write_text(f"append_rules:\n  - {PACK}\n")
    shutil.copy(CDK, tmp_path / "template.json")
    result = cli(tmp_path, "template.json")
    assert rule_ids(result.stdout) == {"W9108": 4}
    assert result.returncode & 4, result.stdout  # the pack's warnings fail it (stock rules may add more)


def test_every_rule_has_an_id_in_the_custom_range_a_doc_link_and_a_description() -> None:
    listed = cli(PACK.parent, "--list-rules", "--append-rules", str(PACK)).stdout
    ours = [line for line in listed.splitlines() if line.startswith(PACK_IDS)]
    assert len(ours) == 12, ours
    from cfnlint.core import get_rules

    rules = [r for r in get_rules([str(PACK)], [], []) if r.id.startswith(PACK_IDS)]
    assert sorted(r.id[1:] for r in rules) == [str(n) for n in range(9101, 9113)]
    for rule in rules:
        assert rule.source_url.startswith("https://docs.aws.amazon.com/"), rule.id
        assert rule.shortdesc and len(rule.description) > 40, rule.id


@pytest.mark.parametrize("template", [CDK, SAM], ids=["cdk", "sam"])
def test_the_pack_adds_findings_and_takes_none_away(template: Path, tmp_path: Path) -> None:
    stock = Counter(
        line.split()[0] for line in cli(tmp_path, str(template)).stdout.splitlines() if line.startswith(("E", "W", "I"))
    )
    both = cli(tmp_path, "--append-rules", str(PACK), "--", str(template)).stdout
    combined = Counter(line.split()[0] for line in both.splitlines() if line.startswith(("E", "W", "I")))
    assert combined - rule_ids(both) == stock


COPIED_RUN = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path[:] = [p for p in sys.path if p not in ("", ".", {repo!r})]
try:
    import cfnlint_websocket
    raise SystemExit("cfnlint_websocket is importable here: the copy would not be tested " + cfnlint_websocket.__file__)
except ImportError:
    pass
sys.argv = ["cfn-lint", "--append-rules", "team-rules/cfnlint_websocket", "--", {template!r}]
from cfnlint.runner import main
main()
"""


def test_the_folder_works_copied_into_another_repository(tmp_path: Path) -> None:
    """A team that vendors the folder (no install of this project) gets the same findings."""
    shutil.copytree(PACK, tmp_path / "team-rules" / "cfnlint_websocket", ignore=shutil.ignore_patterns("__pycache__"))
    script = COPIED_RUN.format(repo=str(PACK.parent), template=str(SAM))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert rule_ids(result.stdout) == {"E9107": 3}, result.stdout + result.stderr
