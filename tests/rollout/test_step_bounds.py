"""How long a step may wait: an hour of wall time (a stack step: plus its monitoring time) or
MAX_POLLS checks, whichever comes first, the same in both orchestrators (the bound travels in the
step's work)."""

from __future__ import annotations

import pytest

from rollout.shift_step import Shift
from rollout.stacks import StageFailed
from rollout.steps import MAX_POLLS, MAX_WAIT_SECONDS, Bake, DeployStack

STEP = Bake("bake", 2.0, "cc-websocket-alarm-", 600)


def test_a_step_may_wait_an_hour_of_wall_time_and_no_longer() -> None:
    clock = [1_000.0]
    work = STEP.bounded({}, now=lambda: clock[0])
    for waited in (60.0, MAX_WAIT_SECONDS):
        clock[0] = 1_000.0 + waited
        work = STEP.bounded(work, now=lambda: clock[0])
    assert work["polls"] == 3 and work["since"] == 1_000.0
    clock[0] = 1_000.0 + MAX_WAIT_SECONDS + 1
    with pytest.raises(StageFailed, match=r"bake: still waiting after 60 min \(3 checks 2 s apart\)"):
        STEP.bounded(work, now=lambda: clock[0])


def test_a_step_that_never_waits_is_bounded_by_its_checks() -> None:
    """A wait of 0 (a rehearsal) makes no time pass: the count keeps the execution history bounded."""
    work = {"polls": MAX_POLLS - 1, "since": 0.0}
    assert STEP.bounded(work, now=lambda: 0.0)["polls"] == MAX_POLLS
    with pytest.raises(StageFailed, match="rollout watch"):
        STEP.bounded({"polls": MAX_POLLS, "since": 0.0}, now=lambda: 0.0)


def _deploy(monitoring_minutes: int) -> DeployStack:
    url = "https://bucket.s3.eu-west-1.amazonaws.com/templates/compute.yaml"
    return DeployStack("compute", 2.0, "cc-compute", url, "0" * 64, {}, monitoring_minutes=monitoring_minutes)


@pytest.mark.parametrize("minutes", [5, 120, 180])
def test_a_stack_step_may_wait_its_monitoring_time_longer(minutes: int) -> None:
    """CloudFormation keeps the stack in progress while it watches the triggers after the update;
    a shift's hold reads the alarms for its seconds on top (one phase may be either)."""
    step = _deploy(minutes)
    shift = Shift("shift", 2.0, step.to_dict(), "1", (0.1,), 3600, "cc-websocket-alarm-")
    for waiting, hold in ((step, 0), (shift, 3600)):
        limit = MAX_WAIT_SECONDS + minutes * 60 + hold
        work = waiting.bounded({}, now=lambda: 0.0)
        assert waiting.bounded(work, now=lambda limit=limit: limit)["since"] == 0.0
        with pytest.raises(StageFailed, match="still waiting"):
            waiting.bounded(work, now=lambda limit=limit: limit + 1)


def test_a_monitored_stack_is_watched_no_more_often_than_its_checks_allow() -> None:
    """The count bounds the execution's history: a long monitoring time looks less often."""
    assert _deploy(0).watch_seconds() == 2.0
    for minutes in (5, 120, 180):
        step = _deploy(minutes)
        assert step.watch_seconds() * MAX_POLLS >= MAX_WAIT_SECONDS + minutes * 60
        assert step.watch_seconds() >= step.wait
