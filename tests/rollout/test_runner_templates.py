"""The runner refuses a plan whose template URL is outside the rollout stack's bucket: whoever may
start an execution writes its input, and must not be able to make the CloudFormation role deploy
a template from anywhere else."""

from __future__ import annotations

import io
import json

import pytest

from rollout import package, settings, sfn_engine
from rollout.plan import Plan
from rollout.report import Reporter
from rollout.runner import foreign_templates
from rollout.stacks import StageFailed
from tests.rollout.conftest import Run

BUCKET = "cc-websocket-rollout-artifactsbucket-abc"
OURS = f"https://{BUCKET}.s3.eu-west-1.amazonaws.com/templates/compute-0123.yaml"


def plan_with(url: str) -> Plan:
    step = {"kind": "stack", "name": "compute", "wait": 5, "stack_name": "cc-websocket-compute", "template_url": url,
            "template_sha256": "", "parameters": {}}  # fmt: skip
    return Plan.from_dict({"environment": "prod", "region": "eu-west-1", "account": "123456789012",
                           "partition": "aws", "artifacts_bucket": BUCKET, "role_arn": "", "run_id": "1",
                           "steps": [step]})  # fmt: skip


@pytest.mark.parametrize(
    "url",
    [
        "https://attacker-bucket.s3.eu-west-1.amazonaws.com/templates/compute.yaml",
        f"https://{BUCKET}.s3.us-east-1.amazonaws.com/templates/compute.yaml",  # another region's bucket
        f"http://{BUCKET}.s3.eu-west-1.amazonaws.com/templates/compute.yaml",
        f"https://{BUCKET}.s3.eu-west-1.amazonaws.com/handlers/compute.yaml",
        f"https://{BUCKET}.s3.eu-west-1.amazonaws.com/templates/../handlers/x.yaml",
        f"https://{BUCKET}.s3.eu-west-1.amazonaws.com/templates/x.yaml?versionId=1",
        f"https://{BUCKET}.s3.eu-west-1.amazonaws.com.attacker.example/templates/x.yaml",
    ],
)
def test_a_template_outside_the_buckets_templates_is_refused(url: str) -> None:
    assert foreign_templates(plan_with(url), BUCKET) == [f"compute: {url}"]
    assert foreign_templates(plan_with(OURS), BUCKET) == []


@pytest.mark.slow  # a Step Functions rollout, then an execution
def test_an_execution_started_with_a_foreign_template_fails_before_any_change(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, built_artifact: package.Artifact
) -> None:
    summary, aws, _ = rollout(env_settings, "stepfunctions")
    stepfunctions, cloudformation = aws.client("stepfunctions"), aws.client("cloudformation")
    before = cloudformation.list_change_sets(StackName="cc-websocket-compute")["Summaries"]
    described = stepfunctions.describe_execution(executionArn=summary["execution"])
    document = json.loads(described["input"])
    compute = next(s for s in document["plan"]["steps"] if s["name"] == "compute")
    compute["template_url"] = "https://attacker-bucket.s3.eu-west-1.amazonaws.com/templates/admin.yaml"
    compute["template_sha256"] = "0" * 64  # so the stack is not taken as unchanged
    started = stepfunctions.start_execution(stateMachineArn=described["stateMachineArn"], name="tampered",
                                            input=json.dumps(document))  # fmt: skip
    result = sfn_engine.follow(stepfunctions, started["executionArn"], Reporter(io.StringIO()), poll_seconds=0.1)
    with pytest.raises(StageFailed) as refused:
        sfn_engine.finish(result)
    assert "must come from the rollout stack's bucket" in str(refused.value)
    assert refused.value.details == [f"compute: {compute['template_url']}"]
    assert cloudformation.list_change_sets(StackName="cc-websocket-compute")["Summaries"] == before  # nothing planned
