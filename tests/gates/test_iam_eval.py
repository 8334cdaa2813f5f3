"""The gate's evaluator decides conditions as IAM does: a key the request lacks fails a
condition (moto's evaluator took it as satisfied), except IfExists, Null, negated and
ForAllValues operators; what it cannot evaluate it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from gates import iam_eval
from gates.iam_eval import Request

KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def policy(condition: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Statement": [{"Effect": "Allow", "Action": "kms:TagResource", "Resource": "*", "Condition": condition}]}]


TAGGED = {"aws:RequestTag/Application": "CareConnect", "aws:TagKeys": ("Application", "Component")}


@pytest.mark.parametrize(("condition", "context", "expected"), [
    ({"StringEquals": {"aws:ResourceTag/Application": "CareConnect"}}, TAGGED, False),  # a new key has no tags
    ({"StringEquals": {"aws:ResourceTag/Application": "CareConnect"}}, {"aws:ResourceTag/Application": "CareConnect"}, True),
    ({"StringEquals": {"aws:RequestTag/Application": "CareConnect"}}, TAGGED, True),
    ({"StringEqualsIfExists": {"aws:ResourceTag/Application": "CareConnect"}}, TAGGED, True),
    ({"Null": {"aws:ResourceTag/Application": "true"}}, TAGGED, True),
    ({"Null": {"aws:ResourceTag/Application": "false"}}, TAGGED, False),
    ({"StringNotEquals": {"aws:ResourceTag/Application": "Other"}}, {}, True),  # negated: absent matches
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["Application", "Component"]}}, TAGGED, True),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["Application"]}}, TAGGED, False),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["Component"]}}, {}, False),
    ({"ArnEquals": {"iam:PolicyARN": "arn:aws:iam::aws:policy/service-role/*"}},
     {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}, False),
    ({"StringEquals": {"aws:RequestTag/Application": "CareConnect", "aws:ResourceTag/Application": "CareConnect"}},
     TAGGED, False),  # keys of one operator: all must match
])  # fmt: skip
def test_conditions_are_decided_as_iam_decides_them(
    condition: dict[str, Any], context: dict[str, Any], expected: bool
) -> None:
    assert iam_eval.allowed(policy(condition), Request("kms:TagResource", KEY, context)) is expected


def test_an_operator_or_a_multi_valued_key_it_cannot_decide_is_refused() -> None:
    with pytest.raises(ValueError, match="NumericLessThan"):
        iam_eval.allowed(policy({"NumericLessThan": {"kms:x": "1"}}), Request("kms:TagResource", KEY, {"kms:x": "0"}))
    with pytest.raises(ValueError, match="multi-valued"):
        iam_eval.allowed(
            policy({"StringEquals": {"aws:TagKeys": "Application"}}), Request("kms:TagResource", KEY, TAGGED)
        )
