"""The whole run has a bound (--max-minutes, rollout/deadline.py): a step that never ends (a fault
double: CloudFormation, or the execution, reported as still working) stops the run once the bound
has passed on the run's clock (the test's own, advanced by each wait), naming what it waited on and
what AWS still shows in progress, and saying that AWS carries on."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from rollout import cli, settings, strategy
from rollout.aws import Aws
from rollout.deadline import MAX_MINUTES, Deadline, RunOutOfTime, default_minutes
from tests.rollout.conftest import Run, with_parameters


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 60.0)  # every wait a minute of the run's time


def cloudformation_never_finishes(stack_name: str, clock: Clock) -> Any:
    """Once the stack's change set is executed, DescribeStacks shows it UPDATE_IN_PROGRESS for ever,
    each look a minute later on the run's clock."""
    executed: list[bool] = []

    def hook(aws: Aws) -> None:
        def executing(params: dict[str, Any], **_: Any) -> None:
            if params.get("StackName") == stack_name:
                executed.append(True)

        def in_progress(parsed: dict[str, Any], **_: Any) -> None:
            for stack in parsed.get("Stacks", []):
                if executed and stack["StackName"] == stack_name:
                    stack["StackStatus"] = "UPDATE_IN_PROGRESS"
                    clock.now += 60

        aws.events.register("provide-client-params.cloudformation.ExecuteChangeSet", executing)
        aws.events.register("after-call.cloudformation.DescribeStacks", in_progress)

    return hook


def test_a_local_run_past_its_bound_stops_saying_what_still_runs(
    rollout: Run, env_settings: settings.EnvironmentSettings
) -> None:
    rollout(env_settings)
    clock = Clock()
    with pytest.raises(RunOutOfTime) as stopped:
        rollout(
            with_parameters(env_settings, "websocket", ThrottlingRateLimit="333"),
            on_session=cloudformation_never_finishes("cc-websocket-api", clock),
            max_minutes=5,
            clock=clock,
            sleep=clock.sleep,
        )
    message = str(stopped.value)
    assert message.startswith("the run passed its bound of 5 min (--max-minutes), waiting on cloudformation:")
    assert "CloudFormation finishes or rolls back each stack by itself" in message
    assert "still running: cc-websocket-api is UPDATE_IN_PROGRESS" in stopped.value.details
    # Stopped at the first wait past the bound, not later: one poll costs this clock at most three
    # minutes (its wait and the looks at the stack, protection's included).
    assert 5 * 60 <= clock.now <= 8 * 60


@pytest.mark.slow
def test_a_step_functions_run_past_its_bound_names_the_execution_that_carries_on(
    rollout: Run, env_settings: settings.EnvironmentSettings
) -> None:
    clock = Clock()

    def execution_never_ends(aws: Aws) -> None:
        def running(parsed: dict[str, Any], **_: Any) -> None:
            parsed["status"] = "RUNNING"
            clock.now += 60

        aws.events.register("after-call.stepfunctions.DescribeExecution", running)

    with pytest.raises(RunOutOfTime) as stopped:
        rollout(env_settings, "stepfunctions", on_session=execution_never_ends, max_minutes=3, clock=clock,
                sleep=clock.sleep)  # fmt: skip
    assert "waiting on stepfunctions:" in str(stopped.value)
    assert "an execution runs to its end" in str(stopped.value)
    assert any(d.startswith("still running: the Step Functions execution (arn:") for d in stopped.value.details)


@pytest.mark.parametrize("given", ["0", "abc", "601"])
def test_a_bound_out_of_range_is_refused_by_name(given: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        cli.main(["deploy", "--env", "rehearsal", "--max-minutes", given])
    assert refused.value.code == 2
    assert "--max-minutes" in capsys.readouterr().err


def test_the_default_bound_counts_the_monitoring_time_and_says_so() -> None:
    """CloudFormation keeps each update in progress release.monitoring_minutes after it: the default
    bound leaves room for it (a run that could never fit would fail at its first monitored update)."""
    assert default_minutes(SimpleNamespace(release=strategy.Release()), 600) == (MAX_MINUTES + 10, "--max-minutes")
    canary = strategy.parse({"strategy": "canary", "percent": 10, "bake_seconds": 60, "monitoring_minutes": 120})
    minutes, basis = default_minutes(SimpleNamespace(release=canary), 0)
    # compute, websocket and carry, and the canary's two moves; and its one hold of 60 s
    assert minutes == MAX_MINUTES + 120 * 5 + 1
    clock = Clock()
    deadline = Deadline(minutes, clock, basis=basis)
    clock.now = minutes * 60 + 1
    with pytest.raises(RunOutOfTime) as stopped:
        deadline.check()
    assert str(stopped.value).startswith(f"the run passed its bound of {minutes:g} min (the default: {MAX_MINUTES} min")
    assert "release.monitoring_minutes 120 after each of up to 5 updates, 1 min of the shift's holds" in str(
        stopped.value
    )
    assert str(stopped.value).endswith("release.seconds 60 after each move; --max-minutes sets another)")


def test_the_default_bound_counts_a_linear_shifts_holds() -> None:
    """Nine holds of 15 minutes are more than the base bound: a slow linear release fits its default."""
    linear = strategy.parse({"strategy": "linear", "percent": 10, "interval_seconds": 900})
    minutes, basis = default_minutes(SimpleNamespace(release=linear), 0)
    assert minutes == MAX_MINUTES + 9 * 15
    assert "135 min of the shift's holds, release.seconds 900 after each move" in basis
