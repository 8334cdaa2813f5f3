"""The permission gate's IAM evaluator: identity policies decided as IAM decides them.

It replaces moto's statement evaluator, which treats a condition key the request does not carry
as satisfied (AWS: the condition does not match, unless the operator ends in `IfExists`, is
`Null`, is negated, or is a `ForAllValues:` set operator). Actions match case-insensitively,
resources case-sensitively with `*` and `?` as the only wildcards. What it does not evaluate
(NotAction, NotResource, NotPrincipal, an operator it does not know) it refuses, never guesses.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Keys whose value is a set of strings; every other key is single-valued.
MULTI_VALUED = frozenset({"aws:tagkeys", "aws:calledvia"})


@dataclass(frozen=True)
class Request:
    """One call: who would make it is implied by the policies it is decided against."""

    action: str
    resource: str
    context: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)


def wildcard(pattern: str, value: str, *, fold: bool = False) -> bool:
    """IAM's glob: `*` any run of characters (across `/` and `:`), `?` exactly one."""
    if fold:
        pattern, value = pattern.lower(), value.lower()
    return _glob(pattern).fullmatch(value) is not None


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    """A pattern's regex, compiled once: the gate decides the same few hundred patterns 10,000s of times."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    return _listed(document["Statement"])


# operator -> (compare(policy value, request value), negated)
def _string_equals(p: str, r: str) -> bool:
    return p == r


def _string_like(p: str, r: str) -> bool:
    return wildcard(p, r)


def _ignore_case(p: str, r: str) -> bool:
    return p.lower() == r.lower()


def _bool(p: str, r: str) -> bool:
    return str(p).lower() == str(r).lower()


OPERATORS = {
    "stringequals": (_string_equals, False),
    "stringnotequals": (_string_equals, True),
    "stringequalsignorecase": (_ignore_case, False),
    "stringnotequalsignorecase": (_ignore_case, True),
    "stringlike": (_string_like, False),
    "stringnotlike": (_string_like, True),
    "arnequals": (_string_like, False),  # IAM: ArnEquals and ArnLike both take wildcards
    "arnlike": (_string_like, False),
    "arnnotequals": (_string_like, True),
    "arnnotlike": (_string_like, True),
    "bool": (_bool, False),
}


def _lookup(context: Mapping[str, str | tuple[str, ...]], key: str) -> str | tuple[str, ...] | None:
    folded = key.lower()
    for name, value in context.items():
        if name.lower() == folded:
            return value
    return None


def condition_matches(operator: str, key: str, expected: Any, context: Mapping[str, str | tuple[str, ...]]) -> bool:
    """One operator on one key: does the request satisfy it?"""
    values = [str(v) for v in _listed(expected)]
    actual = _lookup(context, key)
    name = operator.lower()
    if name == "null":
        wanted_missing = values[0].lower() == "true"
        return (actual is None) is wanted_missing
    set_operator = None
    if ":" in name:
        set_operator, name = name.split(":", 1)
        if set_operator not in ("foranyvalue", "forallvalues"):
            raise ValueError(f"the gate does not evaluate the condition operator {operator!r}")
    if_exists = name.endswith("ifexists")
    name = name.removesuffix("ifexists")
    if name not in OPERATORS:
        raise ValueError(f"the gate does not evaluate the condition operator {operator!r}")
    compare, negated = OPERATORS[name]
    if actual is None:
        # AWS: a key the request lacks matches only IfExists, a negated operator or ForAllValues.
        return if_exists or negated or set_operator == "forallvalues"
    if set_operator is None and key.lower() in MULTI_VALUED:
        raise ValueError(f"{key} is multi-valued: use ForAnyValue:/ForAllValues: with {operator}")
    items = list(actual) if isinstance(actual, tuple) else [actual]
    if set_operator == "forallvalues":
        hits = [any(compare(v, item) for v in values) for item in items]
        return all(not hit for hit in hits) if negated else all(hits)
    hit = any(compare(v, item) for v in values for item in items)
    return not hit if negated else hit


def conditions_match(condition: Mapping[str, Any] | None, context: Mapping[str, str | tuple[str, ...]]) -> bool:
    """Every operator, every key of a statement's Condition (AND); the values of a key OR."""
    for operator, keys in (condition or {}).items():
        for key, expected in keys.items():
            if not condition_matches(operator, key, expected, context):
                return False
    return True


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    unsupported = {"NotAction", "NotResource", "NotPrincipal"} & set(statement)
    if unsupported:
        raise ValueError(f"the gate does not evaluate {sorted(unsupported)}: {dict(statement)}")
    return (
        any(wildcard(a, request.action, fold=True) for a in _listed(statement["Action"]))
        and any(wildcard(r, request.resource) for r in _listed(statement["Resource"]))
        and conditions_match(statement.get("Condition"), request.context)
    )


def allowed(documents: Sequence[Mapping[str, Any]], request: Request) -> bool:
    """Identity policies: allowed when some statement allows and none denies."""
    effects = {s["Effect"] for d in documents for s in statements(d) if statement_applies(s, request)}
    return "Allow" in effects and "Deny" not in effects
