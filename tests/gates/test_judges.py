"""The judges nobody here wrote pass on templates_out/, with every excuse reviewed and needed;
the controls the templates used to fail (CT.KMS.PR.3, CT.STEPFUNCTIONS.PR.2, CT.S3.PR.8) are
fixed, not excused."""

from __future__ import annotations

from pathlib import Path

import pytest

from gates import judges
from gates.judges import Excuse, Finding


@pytest.fixture(scope="module")
def findings() -> list[Finding]:
    return judges.run_judges()


def test_every_judge_ran_and_every_finding_is_excused_by_a_needed_entry(findings: list[Finding]) -> None:
    verdict = judges.judge(findings, judges.load_exceptions())
    assert [f.explain() for f in verdict.open] == [] and verdict.unused == []
    assert all(judges.summary(findings)[name] > 0 for name in judges.JUDGES)  # each judge's output was read


@pytest.mark.parametrize("rule", ["ct-kms-pr-3", "ct-stepfunctions-pr-2", "ct-s3-pr-8"])
def test_the_controls_the_templates_failed_are_fixed_not_excused(findings: list[Finding], rule: str) -> None:
    assert [f.explain() for f in findings if f.rule == rule] == []
    assert [e for e in judges.load_exceptions() if e.rule == rule] == []


def test_a_new_finding_fails_and_an_excuse_nothing_needs_fails() -> None:
    found = [Finding("cfripper", "PrivilegeEscalationRule", "rollout", "StateMachineRole", "iam:PutRolePolicy")]
    stale = Excuse("control-tower", "ct-s3-pr-9", "rollout", frozenset({"ArtifactsBucket"}), "object lock")
    verdict = judges.judge(found, [stale])
    assert verdict.open == found
    assert verdict.unused == ["control-tower ct-s3-pr-9 rollout ArtifactsBucket"]


def test_an_excuse_needs_a_reason_and_a_known_judge(tmp_path: Path) -> None:
    path = tmp_path / "exceptions.yaml"
    path.write_text("- {judge: cfripper, rule: R, template: rollout, resources: [X]}\n")
    with pytest.raises(ValueError, match="needs a reason"):
        judges.load_exceptions(path)
    path.write_text("- {judge: checkov, rule: R, template: rollout, resources: [X], reason: because}\n")
    with pytest.raises(ValueError, match="judge must be one of"):
        judges.load_exceptions(path)
