"""One rollout per environment at a time, across engines and machines: a lock object in the
environment's artifacts bucket (`locks/<environment>.json`), written with S3's conditional put
(`IfNoneMatch="*"`: only when there is none, answered 412 PreconditionFailed otherwise). It names
who holds it, since when, until when, and the Step Functions execution that carries it on.

A lock past its expiry, or one whose execution has ended, is taken over (a conditional put on its
ETag, so two contenders cannot both win). Anything else is refused by name; `rollout unlock`
removes a lock after asking.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from rollout.plan import PlanRefused

HOLD = timedelta(hours=2)  # at least; a run bounded longer (a long bake, monitoring time) holds it longer
MARGIN = timedelta(minutes=10)  # beyond the run's bound: its last calls and the record after it


def hold_for(run_minutes: float | None) -> timedelta:
    """How long a run's lock holds: HOLD, or its bound and a margin when that is longer (a lock
    expiring mid-run would be taken over by the next run)."""
    return HOLD if run_minutes is None else max(HOLD, timedelta(minutes=run_minutes) + MARGIN)


class LockHeld(PlanRefused):
    """Another rollout holds the environment: nothing was changed."""


@dataclass(frozen=True)
class Lock:
    environment: str
    holder: str  # who: the caller's ARN, host and process
    run_id: str
    engine: str
    since: str  # ISO 8601 UTC
    expires: str
    execution: str = ""  # the Step Functions execution carrying the run, once started
    etag: str = ""

    def describe(self) -> str:
        running = f", execution {self.execution}" if self.execution else ""
        return f"{self.holder} (run {self.run_id}, {self.engine}{running}) since {self.since}, expires {self.expires}"

    def body(self) -> bytes:
        return json.dumps({k: v for k, v in asdict(self).items() if k != "etag"}, sort_keys=True).encode()


def key(environment: str) -> str:
    return f"locks/{environment}.json"


def holder(caller_arn: str) -> str:
    return f"{caller_arn} on {socket.gethostname()} (pid {os.getpid()})"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def read(s3: Any, bucket: str, environment: str) -> Lock | None:
    try:
        found = s3.get_object(Bucket=bucket, Key=key(environment))
    except ClientError as error:
        if _code(error) in ("NoSuchKey", "404"):
            return None
        raise
    return Lock(**json.loads(found["Body"].read()), etag=found["ETag"])


def acquire(
    s3: Any, bucket: str, lock: Lock, *, now: datetime | None = None, ended: Any = lambda _arn: False
) -> tuple[Lock, Lock | None]:
    """Hold the environment; (our lock, the stale one taken over or None). `ended(execution)` says
    whether a held lock's execution has finished."""
    now = now or datetime.now(UTC)
    try:
        put = s3.put_object(Bucket=bucket, Key=key(lock.environment), Body=lock.body(), IfNoneMatch="*")
        return replace(lock, etag=put["ETag"]), None
    except ClientError as error:
        if _code(error) != "PreconditionFailed":
            raise
    held = read(s3, bucket, lock.environment)
    if held is None:  # released meanwhile: try once more
        return acquire(s3, bucket, lock, now=now, ended=ended)
    stale = datetime.fromisoformat(held.expires) <= now or bool(held.execution and ended(held.execution))
    if not stale:
        raise LockHeld(
            f"environment {lock.environment} is being rolled out by {held.describe()}: wait for it to end, "
            f"or, if it is gone, run `python -m rollout unlock --env {lock.environment}`"
        )
    try:
        put = s3.put_object(Bucket=bucket, Key=key(lock.environment), Body=lock.body(), IfMatch=held.etag)
    except ClientError as error:
        if _code(error) == "PreconditionFailed":  # someone else took it over first
            return acquire(s3, bucket, lock, now=now, ended=ended)
        raise
    return replace(lock, etag=put["ETag"]), held


def update(s3: Any, bucket: str, lock: Lock, **changes: str) -> Lock:
    """Our lock with new fields (the execution), written only if it is still ours (its ETag)."""
    changed = replace(lock, **changes)
    put = s3.put_object(Bucket=bucket, Key=key(lock.environment), Body=changed.body(), IfMatch=lock.etag)
    return replace(changed, etag=put["ETag"])


def release(s3: Any, bucket: str, lock: Lock) -> bool:
    """Remove our lock; one taken over by another run (another run id) is left alone."""
    held = read(s3, bucket, lock.environment)
    if held is None or held.run_id != lock.run_id:
        return False
    s3.delete_object(Bucket=bucket, Key=key(lock.environment))
    return True


def new(
    environment: str, caller_arn: str, run_id: str, engine: str, now: datetime | None = None, hold: timedelta = HOLD
) -> Lock:
    now = now or datetime.now(UTC)
    since, expires = now.isoformat(timespec="seconds"), (now + hold).isoformat(timespec="seconds")
    return Lock(environment, holder(caller_arn), run_id, engine, since, expires)


class Holding:
    """The environment held for one run (a context): taken on entry, released on exit, whatever
    the outcome; a Step Functions run names its execution in it once started."""

    def __init__(self, aws: Any, bucket: str, lock: Lock, report: Any) -> None:
        self.aws, self.bucket, self.lock, self.report = aws, bucket, lock, report

    def __enter__(self) -> Holding:
        def ended(execution: str) -> bool:  # a Step Functions client only when a lock names an execution
            sfn = self.aws.client("stepfunctions")
            return bool(sfn.describe_execution(executionArn=execution)["status"] != "RUNNING")

        self.lock, stale = acquire(self.aws.client("s3"), self.bucket, self.lock, ended=ended)
        if stale is not None:
            self.report.line("preflight", f"took over the stale lock of {stale.describe()}")
        self.report.line(
            "preflight",
            f"holding {self.lock.environment} until {self.lock.expires} (s3://{self.bucket}/{key(self.lock.environment)})",
        )
        return self

    def executing(self, execution: str) -> None:
        try:
            self.lock = update(self.aws.client("s3"), self.bucket, self.lock, execution=execution)
        except ClientError as error:  # the execution ended and released it already (unlock_step)
            if _code(error) not in ("PreconditionFailed", "NoSuchKey", "404"):
                raise
            if read(self.aws.client("s3"), self.bucket, self.lock.environment) is not None:
                raise

    def __exit__(self, *_: object) -> None:
        release(self.aws.client("s3"), self.bucket, self.lock)
