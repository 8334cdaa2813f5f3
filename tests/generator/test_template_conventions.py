"""Conventions every generated template keeps, checked across the whole catalog."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from awacs.aws import Policy
from troposphere import AWSObject, AWSProperty

from generator.build import build_all
from generator.catalog import TEMPLATES

# Parameters a deploy must always supply; every other one has a default.
REQUIRED = {"compute": {"CodeS3Bucket", "CodeS3Key"}, "rollout": {"RunnerCodeBucket", "RunnerCodeKey"}}
CONSTRAINT_KEYS = {
    "AllowedValues",
    "AllowedPattern",
    "MinValue",
    "MaxValue",
    "MinLength",
    "MaxLength",
}


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_every_parameter_is_described_constrained_defaulted_and_grouped(templates: dict[str, Any], name: str) -> None:
    template = templates[name]
    parameters = template["Parameters"]
    grouped = [
        p
        for group in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        for p in group["Parameters"]
    ]
    assert sorted(grouped) == sorted(parameters), "each parameter in exactly one console group"
    labels = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterLabels"]
    for pname, spec in parameters.items():
        assert spec.get("Description"), pname
        assert CONSTRAINT_KEYS & set(spec), f"{pname} has no constraint"
        assert ("Default" in spec) != (pname in REQUIRED.get(name, set())), pname
        assert labels[pname]["default"], pname


def _policy_documents(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every value of a property named like a policy document, in the troposphere object tree."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, AWSObject | AWSProperty):
        for key, value in node.properties.items():
            if key.endswith("PolicyDocument"):
                found.append((f"{path}.{key}", value))
            found += _policy_documents(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _policy_documents(item, f"{path}[{index}]")
    return found


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_every_policy_document_is_built_with_awacs(name: str) -> None:
    template = build_all([name])[name]
    documents = [
        found for resource in template.resources.values() for found in _policy_documents(resource, resource.title)
    ]
    assert documents, "a template with IAM resources has policy documents"
    for where, document in documents:
        assert isinstance(document, Policy), f"{where} is a raw {type(document).__name__}"


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_no_hard_coded_partition_or_url_suffix(templates: dict[str, Any], name: str) -> None:
    text = json.dumps(templates[name]["Resources"]) + json.dumps(templates[name].get("Outputs", {}))
    # Step Functions Task resources are the one exception: cfn-lint accepts only arn:aws:states.
    assert "arn:aws:" not in text.replace('"arn:aws:states:::aws-sdk:', '"')
    hosts = re.findall(r"[\w.${}:-]*amazonaws\.com[\w./-]*", text)
    # Service principals (apigateway.amazonaws.com) are the only literal use allowed.
    assert all(re.fullmatch(r"[a-z0-9-]+\.amazonaws\.com", host) for host in hosts), hosts
