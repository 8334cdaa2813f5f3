"""DescribeStacks shows a stack's LastUpdatedTime, as AWS does once a stack has been updated (moto
5.2.x never sets it, so every stack looks as old as its creation). It is set when an update starts
(UpdateStack, or ExecuteChangeSet of an UPDATE change set), on the emulator's clock: a stack whose
update rolled back (UPDATE_ROLLBACK_COMPLETE) shows it too. The release records read it
(rollout/releases.py: did this run change the stack?).

`tests/emulator/test_stack_times.py` shows it.
"""

from __future__ import annotations

from typing import Any

from moto.cloudformation.models import CloudFormationBackend, Stack

from emulator import clock

_installed = False


def _stamp(stack: Stack) -> None:
    stack.last_updated_time = clock.utc()  # type: ignore[attr-defined]  # moto serializes it as LastUpdatedTime


def install() -> None:
    """Stamp every update (idempotent)."""
    global _installed
    if _installed:
        return
    update, execute = Stack.update, CloudFormationBackend.execute_change_set

    def stamped_update(self: Stack, *args: Any, **kwargs: Any) -> None:
        _stamp(self)
        update(self, *args, **kwargs)

    def stamped_execute(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values() if c.change_set_name == change_set_name and
             (stack_name is None or stack_name in (c.stack_name, c.stack_id))), None,
        )  # fmt: skip
        if change_set is not None and change_set.change_set_type == "UPDATE" and change_set.stack_id in self.stacks:
            _stamp(self.stacks[change_set.stack_id])
        execute(self, change_set_name, stack_name)

    Stack.update = stamped_update  # type: ignore[method-assign]
    CloudFormationBackend.execute_change_set = stamped_execute  # type: ignore[method-assign]
    _installed = True
