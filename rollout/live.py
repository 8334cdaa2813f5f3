"""Whether a stack is what the plan says, read from AWS, never from the rollout's own tag: the
template CloudFormation holds (GetTemplate), every parameter's effective value (the one given, or
the template's default) and the code its functions run (CodeSha256). A change made by other means
(`update-stack --use-previous-template`, `update-function-code`, a run of the other engine)
keeps any tag; these reads see it. Drift (DetectStackDrift) is what changed behind a stack's back.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
PARALLEL_READS = 8  # reads in flight at once: each waits on the network, not on this machine

MASKED = "****"  # how DescribeStacks shows a NoEcho parameter: it cannot be compared
DRIFT_LOOKS = 60  # drift detection looked at at most this often, `wait` seconds apart


def code_sha256(data: bytes) -> str:
    """Lambda's CodeSha256 of a zip: base64 of its SHA-256."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def template_text(cf: Any, stack_name: str) -> str:
    body = cf.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
    return body if isinstance(body, str) else json.dumps(body)


def effective(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def differences(live: dict[str, str], wanted: dict[str, str]) -> list[str]:
    """Each parameter whose live value is not the plan's (the plan gives every parameter, defaults too)."""
    found = []
    for name in sorted(wanted):
        actual = live.get(name)
        if actual == MASKED:
            if wanted[name]:
                found.append(f"{name}: NoEcho, its live value cannot be read back")
        elif (actual or "") != wanted[name]:
            found.append(f"{name}: live {actual!r}, plan {wanted[name]!r}")
    return found


def resources_of(cf: Any, stack_name: str, resource_type: str) -> list[str]:
    """The physical ids of the stack's resources of one type, sorted."""
    pages = cf.get_paginator("list_stack_resources").paginate(StackName=stack_name)
    return sorted(
        r["PhysicalResourceId"]
        for page in pages
        for r in page["StackResourceSummaries"]
        if r["ResourceType"] == resource_type and r.get("PhysicalResourceId")
    )


def functions_of(cf: Any, stack_name: str) -> list[str]:
    """The physical names of the stack's Lambda functions."""
    return resources_of(cf, stack_name, "AWS::Lambda::Function")


def read_each(read: Callable[[str], T], names: Sequence[str]) -> list[T]:
    """`read` of every name, in order, up to PARALLEL_READS at a time (botocore clients are
    thread-safe): six functions' configurations cost one round trip's time, not six."""
    if len(names) < 2:
        return [read(name) for name in names]
    with ThreadPoolExecutor(max_workers=min(PARALLEL_READS, len(names))) as pool:
        return list(pool.map(read, names))


def configurations(lambda_client: Any, functions: Sequence[str]) -> list[dict[str, Any]]:
    """GetFunctionConfiguration of each function, in order."""
    return read_each(lambda f: lambda_client.get_function_configuration(FunctionName=f), functions)


def other_code(lambda_client: Any, functions: list[str], wanted: str) -> list[str]:
    """The functions whose code is not `wanted` (CodeSha256)."""
    found = configurations(lambda_client, functions)
    return [f for f, config in zip(functions, found, strict=True) if config["CodeSha256"] != wanted]


def drift(cf: Any, stacks: list[str], sleep: Callable[[float], None], wait: float) -> dict[str, list[str]]:
    """Each stack's drifted resources, one line each (detections started together, then awaited)."""
    started = {name: cf.detect_stack_drift(StackName=name)["StackDriftDetectionId"] for name in stacks}
    found: dict[str, list[str]] = {}
    for name, detection in started.items():
        for _ in range(DRIFT_LOOKS):
            status = cf.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
            if status["DetectionStatus"] != "DETECTION_IN_PROGRESS":
                break
            sleep(max(wait, 1.0))
        if status["DetectionStatus"] == "DETECTION_FAILED":
            found[name] = [f"drift detection failed: {status.get('DetectionStatusReason', 'no reason given')}"]
        elif status.get("StackDriftStatus") == "DRIFTED":
            found[name] = _drifted_resources(cf, name)
    return found


def _drifted_resources(cf: Any, stack_name: str) -> list[str]:
    drifts = cf.describe_stack_resource_drifts(
        StackName=stack_name, StackResourceDriftStatusFilters=["MODIFIED", "DELETED"]
    )["StackResourceDrifts"]
    lines = []
    for d in drifts:
        what = ", ".join(_difference(p) for p in d.get("PropertyDifferences", []))
        lines.append(f"{d['LogicalResourceId']} ({d['ResourceType']}) {d['StackResourceDriftStatus']}: {what or '-'}")
    return lines


def _difference(found: dict[str, str]) -> str:
    """One property's drift; a variable's values are never shown (an environment may hold secrets)."""
    path = found["PropertyPath"]
    if path.startswith("/Environment/"):
        return f"{path} {found.get('DifferenceType', 'NOT_EQUAL')} (value not shown)"
    return f"{path} expected {found['ExpectedValue']} actual {found['ActualValue']}"
