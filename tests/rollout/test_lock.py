"""One rollout per environment at a time (rollout/lock.py): the lock is a conditional put in the
artifacts bucket, refused by S3 (412) when held, across both engines; stale ones are taken over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from rollout import lock, settings
from rollout.aws import Aws
from rollout.cli import main
from rollout.rehearsal import prepare_account
from tests.rollout.conftest import Run

REGION = "eu-west-1"


@pytest.fixture(params=["local", pytest.param("stepfunctions", marks=pytest.mark.slow)])
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def s3_of(emulator: str, env: settings.EnvironmentSettings) -> Any:
    aws = Aws(REGION, endpoint_url=emulator)
    prepare_account(aws, env)
    return aws.client("s3")


def other(env: settings.EnvironmentSettings, **changes: Any) -> lock.Lock:
    held = lock.new(env.name, "arn:aws:iam::123456789012:user/alice", "1-other", "local", **changes)
    return held


def test_a_held_environment_is_refused_by_name_before_anything_changes(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, engine_name: str
) -> None:
    s3 = s3_of(emulator, env_settings)
    theirs, _ = lock.acquire(s3, env_settings.artifacts_bucket, other(env_settings))
    with pytest.raises(
        lock.LockHeld, match=r"being rolled out by arn:aws:iam::123456789012:user/alice on .* \(run 1-other"
    ):
        rollout(env_settings, engine_name)
    cf = Aws(REGION, endpoint_url=emulator).client("cloudformation")
    assert cf.describe_stacks()["Stacks"] == []  # nothing created
    assert lock.read(s3, env_settings.artifacts_bucket, env_settings.name) == theirs  # still theirs
    lock.release(s3, env_settings.artifacts_bucket, theirs)
    summary, _, log = rollout(env_settings, engine_name, max_minutes=400)  # e.g. a six-hour bake's bound
    assert summary["result"] == "succeeded"
    until = datetime.fromisoformat(log.split("holding rehearsal until ", 1)[1].split(" ", 1)[0])
    assert until - datetime.now(UTC) > timedelta(minutes=400)  # never taken over while the run may run
    assert lock.read(s3, env_settings.artifacts_bucket, env_settings.name) is None  # released after the run


def test_the_environment_is_held_before_anything_the_plan_depends_on_is_read(
    rollout: Run, env_settings: settings.EnvironmentSettings
) -> None:
    """The stacks, the functions and the questions are read and asked under the lock: another run
    cannot change them between this run's reads and its changes."""
    _, aws, _ = rollout(env_settings)
    log = aws.counter.log[aws.counter.log.index("sts:GetCallerIdentity") :]
    locked = log.index(f"s3:PutObject {env_settings.artifacts_bucket}")
    assert log[:locked] == ["sts:GetCallerIdentity", f"s3:HeadBucket {env_settings.artifacts_bucket}"]


def test_s3_refuses_the_second_conditional_put(emulator: str, env_settings: settings.EnvironmentSettings) -> None:
    s3 = s3_of(emulator, env_settings)
    s3.put_object(Bucket=env_settings.artifacts_bucket, Key="locks/x.json", Body=b"{}", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=env_settings.artifacts_bucket, Key="locks/x.json", Body=b"{}", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"


def test_an_expired_lock_or_one_whose_execution_ended_is_taken_over(
    emulator: str, env_settings: settings.EnvironmentSettings
) -> None:
    s3, bucket = s3_of(emulator, env_settings), env_settings.artifacts_bucket
    long_ago = datetime.now(UTC) - lock.HOLD - timedelta(minutes=1)
    old, _ = lock.acquire(s3, bucket, other(env_settings, now=long_ago))
    ours, stale = lock.acquire(s3, bucket, lock.new(env_settings.name, "me", "2-ours", "local"))
    assert stale == old and lock.read(s3, bucket, env_settings.name) == ours
    carried = lock.update(s3, bucket, ours, execution="arn:aws:states:eu-west-1:1:execution:m:e")
    with pytest.raises(lock.LockHeld, match="execution arn:aws:states"):
        lock.acquire(s3, bucket, lock.new(env_settings.name, "me", "3-next", "local"), ended=lambda _e: False)
    mine, stale = lock.acquire(s3, bucket, lock.new(env_settings.name, "me", "3-next", "local"), ended=lambda _e: True)
    assert stale == carried
    assert not lock.release(s3, bucket, ours)  # taken over: the old run does not remove the new run's lock
    assert lock.release(s3, bucket, mine)


def test_unlock_says_whose_lock_it_is_and_asks(
    emulator: str,
    env_settings: settings.EnvironmentSettings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3 = s3_of(emulator, env_settings)
    lock.acquire(s3, env_settings.artifacts_bucket, other(env_settings))
    args = ["unlock", "--env", "rehearsal", "--endpoint-url", emulator]
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    assert main(args) == 3
    assert "rehearsal is locked by arn:aws:iam::123456789012:user/alice" in capsys.readouterr().err
    assert lock.read(s3, env_settings.artifacts_bucket, "rehearsal") is not None
    assert main([*args, "--yes"]) == 0
    assert lock.read(s3, env_settings.artifacts_bucket, "rehearsal") is None
    assert main(args) == 0 and "is not locked" in capsys.readouterr().out
