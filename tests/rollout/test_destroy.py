"""`rollout destroy` (rollout/destroy.py) through the emulator: reverse order, termination
protection turned off first, what stays named (and still there), asked, under the lock, read
back, and idempotent."""

from __future__ import annotations

import pytest

from rollout import cli, destroy, lock, settings
from rollout.aws import Aws
from rollout.report import Reporter
from rollout.stacks import Declined, describe
from tests.rollout.conftest import Run

REGION = "eu-west-1"


def destroy_command(emulator: str, *extra: str) -> list[str]:
    return ["destroy", "--env", "rehearsal", "--endpoint-url", emulator, "--poll-seconds", "0", *extra]


def live(emulator: str) -> dict[str, str | None]:
    cf = Aws(REGION, endpoint_url=emulator).client("cloudformation")
    names = ("cc-websocket-api", "cc-websocket-compute", "cc-websocket-rollout")
    return {n: (s.status if (s := describe(cf, n)) else None) for n in names}


def test_destroy_deletes_in_reverse_order_keeps_what_it_says_and_is_idempotent(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rollout(env_settings)
    iam = Aws(REGION, endpoint_url=emulator).client("iam")
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if "ApiGatewayCloudWatchRole" in r["RoleName"]]
    capsys.readouterr()
    assert cli.main(destroy_command(emulator, "--yes")) == 0
    said = capsys.readouterr().err
    assert "Delete 2 stack(s) of rehearsal (cc-websocket-api, cc-websocket-compute)" in said and "yes (--yes)" in said
    assert said.index("cc-websocket-api: deleting") < said.index("cc-websocket-compute: deleting")
    assert "cc-websocket-api: termination protection turned off" in said
    assert "keeps ApiGatewayCloudWatchRole (AWS::IAM::Role" in said and "DeletionPolicy Retain" in said
    assert f"keeps the artifacts bucket s3://{env_settings.artifacts_bucket}" in said
    assert "read back: cc-websocket-api, cc-websocket-compute no longer exist" in said
    assert live(emulator) == dict.fromkeys(live(emulator), None)
    assert roles and all(iam.get_role(RoleName=r) for r in roles)  # the account's logging role stays
    s3 = Aws(REGION, endpoint_url=emulator).client("s3")
    assert s3.head_bucket(Bucket=env_settings.artifacts_bucket)
    assert lock.read(s3, env_settings.artifacts_bucket, "rehearsal") is None  # released
    assert cli.main(destroy_command(emulator, "--yes")) == 0  # again: nothing to delete
    assert "nothing to delete: no stack of rehearsal exists" in capsys.readouterr().err


def test_a_dry_run_or_a_no_deletes_nothing(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rollout(env_settings)
    before = live(emulator)
    assert cli.main(destroy_command(emulator, "--dry-run")) == 0
    assert "DRY RUN: nothing deleted" in capsys.readouterr().err
    assert cli.main(destroy_command(emulator)) == 2  # not a terminal and no --yes: refused before anything
    aws = Aws(REGION, endpoint_url=emulator)
    with pytest.raises(Declined):
        destroy.destroy(env_settings, aws, Reporter(), lambda _question: False, poll_seconds=0)
    assert live(emulator) == before
    assert aws.client("cloudformation").describe_stacks(StackName="cc-websocket-api")["Stacks"][0][
        "EnableTerminationProtection"
    ]


def test_a_held_lock_refuses_destroy(rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str) -> None:
    rollout(env_settings)
    aws = Aws(REGION, endpoint_url=emulator)
    theirs = lock.new("rehearsal", "arn:aws:iam::123456789012:user/alice", "1-other", "local")
    lock.acquire(aws.client("s3"), env_settings.artifacts_bucket, theirs)
    with pytest.raises(lock.LockHeld):
        destroy.destroy(env_settings, aws, Reporter(), lambda _question: True, poll_seconds=0)
    assert live(emulator)["cc-websocket-api"] is not None


@pytest.mark.slow
def test_the_rollout_stack_goes_only_when_named(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rollout(env_settings, "stepfunctions")
    capsys.readouterr()
    assert cli.main(destroy_command(emulator, "--yes")) == 0
    assert "keeps the rollout stack cc-websocket-rollout (--with-rollout-stack deletes it)" in capsys.readouterr().err
    left = live(emulator)
    assert left["cc-websocket-api"] is None and left["cc-websocket-compute"] is None
    assert left["cc-websocket-rollout"] is not None
    assert cli.main(destroy_command(emulator, "--yes", "--with-rollout-stack")) == 0
    assert live(emulator) == dict.fromkeys(live(emulator), None)
