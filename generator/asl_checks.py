"""Static checks of a state machine definition that cfn-lint does not make (it skips them):
every StartAt/Next/Default/Catch target exists and every state is reachable. (The wait loops'
bound is the steps' own: `rollout.steps.Step.bounded`.)"""

from __future__ import annotations

from typing import Any

TERMINAL = {"Succeed", "Fail"}


def successors(state: dict[str, Any]) -> list[str]:
    targets = [state["Next"]] if "Next" in state else []
    targets += [rule["Next"] for rule in state.get("Choices", [])]
    targets += [state["Default"]] if "Default" in state else []
    targets += [catch["Next"] for catch in state.get("Catch", [])]
    return targets


def problems(definition: dict[str, Any]) -> list[str]:
    states: dict[str, dict[str, Any]] = definition["States"]
    found = []
    if definition.get("StartAt") not in states:
        found.append(f"StartAt names no state: {definition.get('StartAt')!r}")
    for name, state in states.items():
        for target in successors(state):
            if target not in states:
                found.append(f"{name} goes to {target!r}, which does not exist")
        if state["Type"] not in TERMINAL | {"Choice"} and "Next" not in state and not state.get("End"):
            found.append(f"{name} has neither Next nor End")
    found += [f"{name} is unreachable" for name in sorted(set(states) - _reachable(definition))]
    for name, state in states.items():  # a Map's iteration is a machine of its own
        if "ItemProcessor" in state:
            found += [f"{name}: {problem}" for problem in problems(state["ItemProcessor"])]
    return found


def _reachable(definition: dict[str, Any]) -> set[str]:
    states, seen, todo = definition["States"], set(), [str(definition.get("StartAt"))]
    while todo:
        name = todo.pop()
        if name in states and name not in seen:
            seen.add(name)
            todo += successors(states[name])
    return seen
