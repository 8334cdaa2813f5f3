"""`python -m rollout policy`: the release engineer's least-privilege policy. The rehearsal run as
a principal holding exactly that policy, with the emulator's IAM enforcement on, deploys; without
one of its statements it fails, naming the call AWS would refuse; `status` and `watch` need
nothing more."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from emulator import EMULATOR_ACCOUNT
from emulator.iam_enforcement import enforcing
from rollout import package, settings
from rollout.aws import Aws
from rollout.cli import main
from rollout.errors import explain
from rollout.factory import Factory
from rollout.options import Options
from rollout.policy import document
from rollout.rehearsal import as_principal, rehearse
from rollout.report import Reporter
from rollout.status import read
from rollout.steps import Where
from rollout.watch import watch
from tests.rollout.conftest import Run


def policy_for(env: settings.EnvironmentSettings, engine: str = "local") -> dict[str, Any]:
    return document(env, engine, Where("aws", env.region, EMULATOR_ACCOUNT))


def test_the_printed_policy_has_one_statement_per_resource_and_one_unscoped_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for engine in ("local", "stepfunctions"):
        assert main(["policy", "--env", "rehearsal", "--engine", engine, "--account", EMULATOR_ACCOUNT]) == 0
        printed = json.loads(capsys.readouterr().out)
        resources = [s["Resource"][0] for s in printed["Statement"]]
        unscoped = [s["Action"] for s in printed["Statement"] if s["Resource"] == ["*"]]
        assert len(resources) == len(set(resources))
        assert unscoped == [["cloudformation:DescribeStackDriftDetectionStatus"]]  # the one call without an ARN
    with pytest.raises(SystemExit) as usage:
        main(["policy", "--env", "rehearsal", "--account", "12345"])
    assert usage.value.code == 2
    assert "expected a 12-digit AWS account id" in capsys.readouterr().err


def test_the_rehearsal_runs_as_a_principal_holding_exactly_the_policy(
    emulator: str, built_artifact: package.Artifact, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = Factory(build_package=lambda *_: built_artifact, role_settle_seconds=0)
    assert main(["rehearse", "--least-privilege", "--json"], factory) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [s["action"] for s in summary["stages"]] == ["created", "unchanged", "created", "updated", "updated"]
    assert main(["rehearse", "--least-privilege", "--engine", "stepfunctions"], factory) == 2
    assert "a least-privilege rehearsal runs the local engine" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("statement", "refused"),
    [("/account", "apigateway:GET"), ("stack/cc-websocket-api/", "cloudformation:")],
)
def test_without_one_statement_the_rehearsal_fails_naming_the_call(
    emulator: str, env_settings: settings.EnvironmentSettings, built_artifact: package.Artifact,
    statement: str, refused: str,
) -> None:  # fmt: skip
    policy = policy_for(env_settings)
    policy["Statement"] = [s for s in policy["Statement"] if statement not in s["Resource"][0]]
    options = Options(poll_seconds=0, build_package=lambda *_: built_artifact)
    with pytest.raises(Exception) as failed:
        rehearse(env_settings, Reporter(io.StringIO()), options, principal_policy=policy)
    failure = explain(failed.value)
    assert failure is not None and failure.exit_code == 1
    assert f"release-engineer is not authorized to perform: {refused}" in failure.message


def test_status_and_watch_need_nothing_more(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, tmp_path: Path
) -> None:
    rollout(env_settings)
    engineer = as_principal(Aws(env_settings.region, endpoint_url=emulator), policy_for(env_settings), Factory())
    with enforcing():
        found = read(env_settings, engineer)
        watched = watch(env_settings, engineer, Reporter(io.StringIO()), Options(poll_seconds=0))
    assert found.healthy and watched.result == "nothing running"
    # An engineer's policy from before the aliases (no lambda:GetAlias): a finding that says what to
    # grant, not a crash.
    older = policy_for(env_settings)
    for statement in older["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        statement["Action"] = [a for a in actions if a != "lambda:GetAlias"] or ["lambda:ListTags"]
    admin = Aws(env_settings.region, endpoint_url=emulator).client("iam")
    admin.put_user_policy(UserName="release-engineer", PolicyName="rollout", PolicyDocument=json.dumps(older))
    with enforcing():
        found = read(env_settings, engineer)
    assert not found.healthy
    assert any(f.startswith("the live aliases cannot be read (AccessDenied") for f in found.findings)
