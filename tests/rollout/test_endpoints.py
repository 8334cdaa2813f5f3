"""The endpoint step against Lambda's real behaviour (Stubber): RevisionId, updates still in
progress, conflicts, and functions that already carry the value, run by the local executor."""

from __future__ import annotations

import io
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from rollout.engine import execute
from rollout.plan import Plan
from rollout.report import Reporter
from rollout.stacks import StageFailed
from rollout.steps import SetVariables

FN = "cc-websocket-default"
VAR = "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT"
URL = "https://a1.execute-api.eu-west-1.amazonaws.com/prod"


def config(revision: str, status: str = "Successful", **variables: str) -> dict[str, Any]:
    return {"FunctionName": FN, "RevisionId": revision, "LastUpdateStatus": status,
            "Environment": {"Variables": variables}}  # fmt: skip


@pytest.fixture
def lam() -> Any:
    return boto3.client("lambda", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")


class Context:
    def __init__(self, lam: Any) -> None:
        self.lam, self.report, self.calls = lam, Reporter(io.StringIO()), []

    def client(self, service: str) -> Any:
        return self.lam

    def confirm(self, question: str) -> bool:
        return True


def set_variable(lam: Any, function: str, name: str, value: str, sleep: Any = lambda _s: None) -> bool:
    """The endpoint step for one function; True when it changed the function."""
    step = SetVariables("endpoint", 1.0, {name: value}, (function,))
    plan = Plan("test", "eu-west-1", "123456789012", "aws", "b", "", "1-a", (step,))
    (result,) = execute(plan, Context(lam), {}, sleep)
    return bool(result["functions"])


def test_merges_with_the_revision_and_waits_for_the_update(lam: Any) -> None:
    sleeps: list[float] = []
    with Stubber(lam) as stub:
        stub.add_response("get_function_configuration", config("r1", DATABASE_URL="postgresql://x/y", **{VAR: ""}))
        stub.add_response("update_function_configuration", config("r2", "InProgress"), {
            "FunctionName": FN, "RevisionId": "r1",
            "Environment": {"Variables": {"DATABASE_URL": "postgresql://x/y", VAR: URL}}})  # fmt: skip
        stub.add_response("get_function_configuration", config("r2", "InProgress"))
        stub.add_response("get_function_configuration", config("r2", "Successful"))
        assert set_variable(lam, FN, VAR, URL, sleep=sleeps.append) is True  # written, then waited for
        stub.assert_no_pending_responses()
    assert sleeps == [1.0]


def test_a_function_already_carrying_the_value_is_not_touched(lam: Any) -> None:
    with Stubber(lam) as stub:
        stub.add_response("get_function_configuration", config("r1", **{VAR: URL}))
        assert set_variable(lam, FN, VAR, URL) is False
        stub.assert_no_pending_responses()


def test_a_conflict_is_retried_on_a_fresh_read(lam: Any) -> None:
    with Stubber(lam) as stub:
        stub.add_response("get_function_configuration", config("r1"))
        stub.add_client_error("update_function_configuration", "PreconditionFailedException", "revision moved")
        stub.add_response("get_function_configuration", config("r3", OTHER="kept"))
        stub.add_response("update_function_configuration", config("r4"), {
            "FunctionName": FN, "RevisionId": "r3", "Environment": {"Variables": {"OTHER": "kept", VAR: URL}}})  # fmt: skip
        stub.add_response("get_function_configuration", config("r4"))
        assert set_variable(lam, FN, VAR, URL, sleep=lambda _s: None) is True
        stub.assert_no_pending_responses()


def test_a_failed_update_is_a_stage_failure(lam: Any) -> None:
    with Stubber(lam) as stub:
        stub.add_response("get_function_configuration", config("r1"))
        stub.add_response("update_function_configuration", config("r2", "InProgress"))
        stub.add_response("get_function_configuration", {**config("r2", "Failed"),
                                                         "LastUpdateStatusReason": "KMS key is disabled"})  # fmt: skip
        with pytest.raises(StageFailed, match="its last update failed: KMS key is disabled"):
            set_variable(lam, FN, VAR, URL, sleep=lambda _s: None)
