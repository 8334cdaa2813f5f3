"""How long a step may wait: an hour of wall time or MAX_POLLS checks, whichever comes first,
the same in both orchestrators (the bound travels in the step's work)."""

from __future__ import annotations

import pytest

from rollout.stacks import StageFailed
from rollout.steps import MAX_POLLS, MAX_WAIT_SECONDS, Bake

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
