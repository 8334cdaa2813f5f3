"""The connection budget: DatabaseConnectionBudget becomes each function's reserved concurrency,
resolved as CloudFormation would for every value the parameter accepts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.generator.test_compute_template import resolved

TRAFFIC = ("Default", "Connect", "Notify", "Disconnect")  # largest share first
FIXED = ("Cleanup", "Migrate")
LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY, LAMBDA_UNRESERVED_MINIMUM = 1000, 100


@pytest.fixture
def compute(templates: dict[str, Any]) -> dict[str, Any]:
    return templates["compute"]


def reserved(template: dict[str, Any], budget: str) -> dict[str, int | None]:
    resources = resolved(template, DatabaseConnectionBudget=budget)
    return {f: resources[f"{f}Function"]["Properties"].get("ReservedConcurrentExecutions") for f in TRAFFIC + FIXED}


def budgets(template: dict[str, Any]) -> list[str]:
    return [v for v in template["Parameters"]["DatabaseConnectionBudget"]["AllowedValues"] if v != "unreserved"]


def test_every_budget_is_split_whole_by_share_and_adds_up(compute: dict[str, Any]) -> None:
    for budget in budgets(compute):
        got = reserved(compute, budget)
        traffic = [got[f] or 0 for f in TRAFFIC]
        assert sum(traffic) == int(budget), budget
        assert traffic == sorted(traffic, reverse=True) and min(traffic) >= 1, (budget, got)
        assert [got[f] for f in FIXED] == [1, 1]


def test_the_default_budget_is_split_4_3_2_1(compute: dict[str, Any]) -> None:
    default = compute["Parameters"]["DatabaseConnectionBudget"]["Default"]
    assert default == "40"
    assert reserved(compute, default) == {"Default": 16, "Connect": 12, "Notify": 8, "Disconnect": 4,
                                          "Cleanup": 1, "Migrate": 1}  # fmt: skip


def test_unreserved_leaves_the_traffic_functions_unbounded(compute: dict[str, Any]) -> None:
    got = reserved(compute, "unreserved")
    assert [got[f] for f in TRAFFIC] == [None] * 4 and [got[f] for f in FIXED] == [1, 1]


def test_the_largest_budget_leaves_lambdas_unreserved_minimum(compute: dict[str, Any]) -> None:
    """PutFunctionConcurrency refuses to take an account below 100 unreserved executions."""
    largest = max(budgets(compute), key=int)
    total = sum(v or 0 for v in reserved(compute, largest).values())
    assert total <= LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY - LAMBDA_UNRESERVED_MINIMUM


def test_no_function_skips_checkovs_reserved_concurrency_check(compute: dict[str, Any]) -> None:
    for name, resource in compute["Resources"].items():
        skips = resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
        assert "CKV_AWS_115" not in [s["id"] for s in skips], name


PROXY_IAM = {"DatabaseAuth": "iam", "DatabaseHost": "cc.proxy-abc.eu-west-1.rds.amazonaws.com",
             "DatabaseUser": "ws_app", "DatabaseResourceId": "prx-ABCDEFGHIJKL01234"}  # fmt: skip


def test_iam_through_rds_proxy_connects_as_the_user_on_the_proxy(compute: dict[str, Any]) -> None:
    """rds-db:connect on arn:...:dbuser:prx-<proxy resource id>/<user>, as RDS Proxy checks it."""
    resources = resolved(compute, **PROXY_IAM)
    (policy,) = [
        p for p in resources["HandlersRole"]["Properties"]["Policies"] if p["PolicyName"] == "database-iam-auth"
    ]
    (grant,) = policy["PolicyDocument"]["Statement"]
    assert grant["Resource"] == ["arn:aws:rds-db:eu-west-1:123456789012:dbuser:prx-ABCDEFGHIJKL01234/ws_app"]
    env = resources["ConnectFunction"]["Properties"]["Environment"]["Variables"]
    assert env["DATABASE_HOST"] == PROXY_IAM["DatabaseHost"] and "DATABASE_PROXY_HOST" not in env


def test_the_secret_method_may_go_through_a_proxy_endpoint(compute: dict[str, Any]) -> None:
    secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cc/db-AbCdEf"
    resources = resolved(compute, DatabaseAuth="secret", DatabaseSecretArn=secret, DatabaseProxyHost="cc.proxy-abc.x")
    for function in TRAFFIC + FIXED:
        env = resources[f"{function}Function"]["Properties"]["Environment"]["Variables"]
        assert env["DATABASE_PROXY_HOST"] == "cc.proxy-abc.x", function
