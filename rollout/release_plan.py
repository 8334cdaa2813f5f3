"""Whether this run shifts traffic by weight, and from which versions (the plan's one decision).

A release shifts when the environment asks for canary or linear, the compute stack exists with
its live versions, and this run publishes new ones (the code's CodeSha256 or the configuration
digest differs from the stack's). A shift that was stopped (an alarm rolled it back, a run was
interrupted) is still in the stack's `ShiftFromVersions`: the next run shifts again from those
versions, never promotes the stopped release all at once.
"""

from __future__ import annotations

from generator.stages import SHIFT_PARAMETERS, SHIFTED_FUNCTIONS, VERSION_PARAMETERS
from rollout.stacks import StackState

SHIFT_FROM, WEIGHT = SHIFT_PARAMETERS["compute"]
CODE_SHA, DIGEST = VERSION_PARAMETERS["compute"]


def live_versions(state: StackState | None) -> str:
    """The versions the live aliases serve now, one per shifted function ("" : not known)."""
    if state is None:
        return ""
    held = state.parameters.get(SHIFT_FROM, "")
    if held:
        return held
    versions = [state.outputs.get(f"{f.logical}FunctionVersion", "") for f in SHIFTED_FUNCTIONS]
    return ",".join(versions) if all(versions) else ""


def publishes(state: StackState | None, code_sha256: str, digest: str) -> bool:
    """Whether this run publishes new versions over live ones (a first create has none before it)."""
    if state is None:
        return False
    return state.parameters.get(CODE_SHA, "") != code_sha256 or state.parameters.get(DIGEST, "") != digest


def shift_from(shifts: bool, state: StackState | None, code_sha256: str, digest: str) -> str:
    """ShiftFromVersions for this run: the old versions when it shifts, else "" (all at once)."""
    old = live_versions(state)
    if not shifts or state is None or not old:
        return ""
    stopped = bool(state.parameters.get(SHIFT_FROM))
    return old if stopped or publishes(state, code_sha256, digest) else ""
