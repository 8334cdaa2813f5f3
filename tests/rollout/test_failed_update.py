"""After a failed update: CloudFormation rolled the stack back (UPDATE_ROLLBACK_COMPLETE), the
settings are restored, and `deploy` and `status` agree on whether AWS holds what the settings say,
at every point, on both engines. The update fails as it would on AWS: the websocket stack's log
groups are given a KMS key that does not exist (emulator/log_keys.py)."""

from __future__ import annotations

from typing import Any

import pytest

from rollout import settings, status
from rollout.aws import Aws
from rollout.stacks import StageFailed
from tests.emulator.test_log_keys import MISSING_KEY
from tests.rollout.conftest import Run, with_parameters
from tests.rollout.test_scenarios import REGION, actions


@pytest.fixture(params=["local", pytest.param("stepfunctions", marks=pytest.mark.slow)])
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _stack(aws: Aws, name: str) -> dict[str, Any]:
    return dict(aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0])


def test_a_rolled_back_update_then_the_settings_restored(
    rollout: Run, env_settings: settings.EnvironmentSettings, engine_name: str, emulator: str
) -> None:
    rollout(env_settings, engine_name)
    aws = Aws(REGION, endpoint_url=emulator)
    bad = with_parameters(env_settings, "websocket", LogsKmsKeyArn=MISSING_KEY)
    with pytest.raises(StageFailed) as failed:
        rollout(bad, engine_name)
    assert "cc-websocket-api ended UPDATE_ROLLBACK_COMPLETE" in str(failed.value)
    assert any("does not exist or is not allowed" in d for d in failed.value.details)
    held = _stack(aws, "cc-websocket-api")
    assert held["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in held["Parameters"]}["LogsKmsKeyArn"] == ""

    # The settings still name the key: AWS does not hold them. status says so (exit 1), as deploy
    # does by trying again (and failing again, the same way).
    found = status.read(bad, aws)
    assert not found.healthy
    assert any("LogsKmsKeyArn" in f and "settings" in f for f in found.findings)
    with pytest.raises(StageFailed, match="UPDATE_ROLLBACK_COMPLETE"):
        rollout(bad, engine_name)

    # The settings restored: AWS holds exactly them. status is healthy (the rollback a note), and
    # deploy says unchanged with no mutating call, read back from the stacks, never from a tag.
    found = status.read(env_settings, aws)
    assert found.healthy, found.findings
    assert any("rolled back" in note for note in found.notes)
    summary, _, _ = rollout(env_settings, engine_name)
    assert set(actions(summary).values()) == {"unchanged"}

    # A real change after the rollback is applied, and status then agrees again.
    faster = with_parameters(env_settings, "websocket", ThrottlingRateLimit="321")
    assert not status.read(faster, aws).healthy
    summary, _, _ = rollout(faster, engine_name)
    assert actions(summary)["websocket"] == "updated"
    assert _stack(aws, "cc-websocket-api")["StackStatus"] == "UPDATE_COMPLETE"
    assert status.read(faster, aws).healthy
