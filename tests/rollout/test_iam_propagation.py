"""The first Step Functions rollout races IAM: the rollout stack's CloudFormation role, created a
moment earlier, is the RoleARN of the next change sets. With the emulator modelling a role that
IAM has not propagated yet, the rollout asks again within its budget and goes on; past the
budget it fails naming the role."""

from __future__ import annotations

import pytest

from emulator import advance_clock
from emulator.aws_rules import iam_propagation
from rollout import settings
from rollout.stacks import StageFailed
from rollout.steps import ACCOUNT_ROLE_SETTLE_SECONDS, ROLE_PROPAGATION_SECONDS, ROLE_RETRY_SECONDS
from tests.rollout.conftest import Run
from tests.rollout.test_rehearse_options import someone_elses_role


def test_the_first_rollout_rides_through_a_service_role_iam_has_not_propagated(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    someone_elses_role(emulator)  # an account whose logging role has long existed
    with iam_propagation(45):
        summary, _, log = rollout(env_settings, "stepfunctions", sleep=advance_clock)
    assert summary["result"] == "succeeded"
    waits = [line for line in log.splitlines() if "cannot assume" in line and "CloudFormationRole" in line]
    # Asked again every 10 s until 45 s had passed (the wall clock's seconds count too).
    assert 1 <= len(waits) <= 45 // ROLE_RETRY_SECONDS + 1


def test_a_service_role_refused_past_the_budget_fails_naming_it(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    someone_elses_role(emulator)
    with iam_propagation(ROLE_PROPAGATION_SECONDS * 10), pytest.raises(StageFailed) as failed:
        rollout(env_settings, "stepfunctions", sleep=advance_clock)
    assert "still cannot assume the service role arn:aws:iam::123456789012:role/rollout/" in str(failed.value)
    assert f"after {ROLE_PROPAGATION_SECONDS} s" in str(failed.value)
    assert "trust cloudformation.amazonaws.com" in failed.value.details[0]


@pytest.mark.parametrize("engine_name", ["local", "stepfunctions"])
def test_a_fresh_accounts_logging_role_is_given_time_to_propagate_before_api_gateway_is_set_to_it(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, engine_name: str
) -> None:
    # API Gateway refuses a role IAM has not propagated, and AWS::ApiGateway::Account does not wait.
    with iam_propagation(ACCOUNT_ROLE_SETTLE_SECONDS - 5):
        summary, aws, _ = rollout(
            env_settings, engine_name, sleep=advance_clock, role_settle_seconds=ACCOUNT_ROLE_SETTLE_SECONDS
        )
    assert summary["result"] == "succeeded"
    settle = next(s for s in summary["stages"] if s["stage"] == "settle")
    assert (settle["action"], settle["detail"].endswith("waited for IAM")) == ("succeeded", True)
    role = aws.client("apigateway").get_account()["cloudwatchRoleArn"]
    assert ":role/cc-websocket-compute-ApiGatewayCloudWatchRole-" in role
    # A second run finds the role old enough and waits for nothing.
    again, _, _ = rollout(
        env_settings, engine_name, sleep=advance_clock, role_settle_seconds=ACCOUNT_ROLE_SETTLE_SECONDS
    )
    assert {s["stage"]: s["action"] for s in again["stages"]}["settle"] == "unchanged"
