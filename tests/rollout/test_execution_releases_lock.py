"""The Step Functions execution releases the environment's lock itself when it ends, succeeded or
failed (its Release / ReleaseAfterFailure states, rollout/unlock_step.py): the lock never outlives
the execution, even when nobody follows it to the end. Here the engine's own release is made to do
nothing (as if the laptop had gone), so only the state machine can have removed the lock."""

from __future__ import annotations

from typing import Any

import pytest

from rollout import lock, settings
from rollout.aws import Aws
from rollout.stacks import StageFailed
from tests.emulator.test_log_keys import MISSING_KEY
from tests.rollout.conftest import Run, with_parameters
from tests.rollout.test_scenarios import REGION


def engine_never_releases(aws: Aws) -> None:
    """The engine's DeleteObject on its lock answers without reaching S3 (the runner's, inside
    the emulator, is a session of its own and goes through)."""
    seen: list[str] = []

    def skip(params: dict[str, Any], **_: Any) -> Any:
        if params.get("Key", "").startswith("locks/"):
            seen.append(params["Key"])
            return {"status_code": 204, "headers": {}, "body": b""}, {}
        return None

    aws.events.register("before-call.s3.DeleteObject", skip)
    aws.__dict__["skipped_releases"] = seen


def _history(aws: Aws, execution: str) -> list[dict[str, Any]]:
    stepfunctions = aws.client("stepfunctions")
    return list(stepfunctions.get_execution_history(executionArn=execution, maxResults=1000)["events"])


def _entered(events: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


@pytest.mark.slow
def test_a_succeeded_execution_releases_its_lock(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    summary, aws, log = rollout(env_settings, "stepfunctions", on_session=engine_never_releases)
    # The engine, looking once the execution had ended, found no lock left to remove (and could not have).
    assert aws.__dict__["skipped_releases"] == []
    s3 = Aws(REGION, endpoint_url=emulator).client("s3")
    assert lock.read(s3, env_settings.artifacts_bucket, env_settings.name) is None
    assert _entered(_history(aws, summary["execution"]))[-2:] == ["Release", "Done"]
    assert "lock: released by the execution" in log
    assert "unlock" not in {s["stage"] for s in summary["stages"]}  # not a stage of the release


@pytest.mark.slow
def test_a_failed_execution_releases_its_lock_and_still_fails_with_the_steps_error(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    rollout(env_settings, "stepfunctions")
    bad = with_parameters(env_settings, "websocket", LogsKmsKeyArn=MISSING_KEY)  # its update rolls back
    sessions: list[Aws] = []

    def observed(aws: Aws) -> None:
        engine_never_releases(aws)
        sessions.append(aws)

    with pytest.raises(StageFailed, match="cc-websocket-api ended UPDATE_ROLLBACK_COMPLETE"):
        rollout(bad, "stepfunctions", on_session=observed)
    (aws,) = sessions
    assert aws.__dict__["skipped_releases"] == []
    s3 = Aws(REGION, endpoint_url=emulator).client("s3")
    assert lock.read(s3, env_settings.artifacts_bucket, env_settings.name) is None
    stepfunctions = aws.client("stepfunctions")
    (execution,) = [
        e for e in stepfunctions.list_executions(stateMachineArn=_machine(aws))["executions"] if e["status"] == "FAILED"
    ]
    entered = _entered(_history(aws, execution["executionArn"]))
    assert entered[-2:] == ["ReleaseAfterFailure", "Failed"]


def test_the_release_removes_only_its_own_runs_lock(emulator: str, env_settings: settings.EnvironmentSettings) -> None:
    """A lock another run took over (another run id) is left alone; this run's is removed."""
    from rollout.engine import LocalContext
    from rollout.rehearsal import prepare_account
    from rollout.report import Reporter
    from rollout.unlock_step import ReleaseLock

    aws = Aws(REGION, endpoint_url=emulator)
    prepare_account(aws, env_settings)
    s3, bucket = aws.client("s3"), env_settings.artifacts_bucket
    ctx = LocalContext(aws, Reporter(), lambda _q: True)
    held, _ = lock.acquire(s3, bucket, lock.new(env_settings.name, "someone", "other", "local"))
    step = ReleaseLock("unlock", 0, bucket, env_settings.name, "mine")
    assert step.start(ctx, {}).result == {"stage": "unlock", "action": "unchanged",
                                          "detail": "held by run other: left alone"}  # fmt: skip
    assert lock.read(s3, bucket, env_settings.name) is not None
    lock.release(s3, bucket, held)
    lock.acquire(s3, bucket, lock.new(env_settings.name, "me", "mine", "stepfunctions"))
    assert step.start(ctx, {}).result["action"] == "released"  # type: ignore[index]
    assert lock.read(s3, bucket, env_settings.name) is None
    assert step.start(ctx, {}).result["detail"] == "no lock held"  # type: ignore[index]


def _machine(aws: Aws) -> str:
    stack = aws.client("cloudformation").describe_stacks(StackName="cc-websocket-rollout")["Stacks"][0]
    return str({o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["StateMachineArn"])
