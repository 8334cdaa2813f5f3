"""Static checks of a state machine definition that cfn-lint does not make (it skips them):
every StartAt/Next/Default/Catch target exists, every state is reachable, and every loop
passes a bound (a Choice comparing a `$.polls.` counter that leads out of the loop)."""

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
    found += [
        f"loop without a bound: {', '.join(sorted(loop))}" for loop in _loops(states) if not _bounded(loop, states)
    ]
    return found


def _reachable(definition: dict[str, Any]) -> set[str]:
    states, seen, todo = definition["States"], set(), [str(definition.get("StartAt"))]
    while todo:
        name = todo.pop()
        if name in states and name not in seen:
            seen.add(name)
            todo += successors(states[name])
    return seen


def _loops(states: dict[str, dict[str, Any]]) -> list[set[str]]:
    """Strongly connected components with a cycle (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for root in states:
        if root in index:
            continue
        work = [(root, iter(successors(states[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in states:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors(states[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors(states[node]):
                    components.append(component)
    return components


def _bounded(loop: set[str], states: dict[str, dict[str, Any]]) -> bool:
    for name in loop:
        for rule in states[name].get("Choices", []):
            if (
                str(rule.get("Variable", "")).startswith("$.polls.")
                and "NumericGreaterThanEquals" in rule
                and rule["Next"] not in loop
            ):
                return True
    return False
