"""Old versions pruned after a release (rollout/prune_step.py): what a live alias serves and what the
compute stack holds stay, with the newest unused ones; Lambda (the emulator, as Lambda does)
refuses to delete a version an alias serves."""

from __future__ import annotations

import io
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from rollout.aws import Aws
from rollout.engine import LocalContext
from rollout.prune_step import PruneVersions, prunable
from rollout.report import Reporter
from tests.emulator.test_stack_guards import function_stack

LIVE = {"Version": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Fn"}}},
        "Live": {"Type": "AWS::Lambda::Alias", "Properties": {
            "FunctionName": {"Ref": "Fn"}, "Name": "live", "FunctionVersion": {"Fn::GetAtt": ["Version", "Version"]}}}}  # fmt: skip


def versions(lambda_client: Any, function: str) -> list[str]:
    found = lambda_client.list_versions_by_function(FunctionName=function)["Versions"]
    return sorted((v["Version"] for v in found if v["Version"] != "$LATEST"), key=int)


def test_pruning_keeps_what_is_served_and_held_and_the_newest_unused(emulator: str) -> None:
    function_stack(emulator, "pruned", LIVE)  # version 1: the stack's, served by live
    aws = Aws("eu-west-1", endpoint_url=emulator)
    other = boto3.client("lambda", region_name="eu-west-1", endpoint_url=emulator)

    def moved(params: dict[str, Any], **_: Any) -> None:  # someone points the hotfix alias at 4 meanwhile
        if params.get("Qualifier") == "4":
            other.update_alias(FunctionName="pruned-fn", Name="hotfix", FunctionVersion="4")

    aws.events.register("provide-client-params.lambda.DeleteFunction", moved)  # before the client is made
    lambda_client = aws.client("lambda")
    for memory in range(2, 10):  # versions 2..9, published by hand (releases the stack let go)
        lambda_client.update_function_configuration(FunctionName="pruned-fn", MemorySize=128 * memory)
        lambda_client.publish_version(FunctionName="pruned-fn")
    # live serves 9 and sends 10% to 3: version 1 is kept only because the stack holds it
    lambda_client.update_alias(FunctionName="pruned-fn", Name="live", FunctionVersion="9",
                               RoutingConfig={"AdditionalVersionWeights": {"3": 0.1}})  # fmt: skip
    with pytest.raises(ClientError, match="aliases reference it: \\[live\\]"):  # as Lambda refuses it
        lambda_client.delete_function(FunctionName="pruned-fn", Qualifier="3")

    # Meanwhile someone points a second alias at version 4: Lambda refuses that delete; the step
    # goes on (the release it follows is out) and says what it left.
    lambda_client.create_alias(FunctionName="pruned-fn", Name="hotfix", FunctionVersion="1")
    log = io.StringIO()
    step = PruneVersions("prune", 0, ("pruned-fn",), "pruned", "pruned-*")
    done = step.start(LocalContext(aws, Reporter(log), lambda _q: False), {})
    assert done.done and done.result is not None and done.result["action"] == "updated"
    # 1 (the stack's and hotfix's), 3 and 9 (live's), 6, 7 and 8 (the newest unused): 2 and 5
    # deleted, 4 refused (hotfix serves it now) and left
    assert versions(lambda_client, "pruned-fn") == ["1", "3", "4", "6", "7", "8", "9"]
    assert "2 old version(s) deleted across 1 function(s), 1 left" in log.getvalue()
    assert "WARNING pruned-fn:4 not deleted (ResourceConflictException)" in log.getvalue()
    again = step.start(LocalContext(aws, Reporter(io.StringIO()), lambda _q: False), {})
    assert again.result is not None and again.result["action"] == "unchanged"


def test_a_version_list_refused_leaves_the_release_succeeded_and_says_so(emulator: str) -> None:
    """A policy from before pruning (no lambda:ListVersionsByFunction): the step warns, the release stands."""
    function_stack(emulator, "pruned", LIVE)
    aws = Aws("eu-west-1", endpoint_url=emulator)

    def refused(**_: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "ListVersionsByFunction"
        )

    aws.events.register("before-call.lambda.ListVersionsByFunction", refused)
    log = io.StringIO()
    step = PruneVersions("prune", 0, ("pruned-fn",), "pruned", "pruned-*")
    done = step.start(LocalContext(aws, Reporter(log), lambda _q: False), {})
    assert done.done and done.result is not None and done.result["action"] == "unchanged"
    assert "WARNING old versions not pruned: the versions cannot be read (AccessDeniedException)" in log.getvalue()


def test_what_is_prunable() -> None:
    assert prunable(["1", "2", "3", "4", "5", "10"], {"4"}, 2) == ["1", "2", "3"]
    assert prunable(["1", "2"], set(), 3) == []
