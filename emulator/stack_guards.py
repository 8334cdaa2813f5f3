"""CloudFormation's guards of a live stack, which moto (5.2.x) lacks, taught from the emulator's own
state so a rehearsal meets them as an account would:

1. Drift detection: DetectStackDrift, DescribeStackDriftDetectionStatus and
   DescribeStackResourceDrifts compare each resource the stack holds with what its template and
   parameters say. Lambda functions are checked (Handler, Runtime, MemorySize, Timeout and the
   environment's variables, the properties a console or CLI edit changes), and so are aliases (the
   version they serve and their weights: `update-alias` by hand moves traffic behind the stack); a
   function or alias deleted behind the stack's back is DELETED; other types are NOT_CHECKED, as
   AWS reports types it cannot check.
2. DescribeStacks shows each parameter as AWS does: a CommaDelimitedList as the text given (moto
   shows Python's list, `['a', 'b']`) and a NoEcho parameter as `****` (moto compares the value,
   not the name, with the NoEcho names, so it shows the secret).

`tests/emulator/test_stack_guards.py` shows each.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from moto.awslambda.models import lambda_backends
from moto.cloudformation import parsing
from moto.cloudformation.models import CloudFormationBackend, Stack
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult

CHECKED = {"Handler": "handler", "Runtime": "run_time", "MemorySize": "memory_size", "Timeout": "timeout"}
_detections: dict[str, dict[str, Any]] = {}  # detection id -> its result
_installed = False


def _stack(backend: CloudFormationBackend, name: str) -> Stack:
    return backend.get_stack(name)


def _function_drift(stack: Stack, logical_id: str, properties: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    """The function's drift status and property differences, from the template's resolved values."""
    physical = getattr(stack.resource_map[logical_id], "physical_resource_id", logical_id)
    backend = lambda_backends[stack.account_id][stack.region_name]
    try:
        function = backend.get_function(physical)
    except Exception:  # moto raises its own not-found error
        return "DELETED", []
    expected = parsing.clean_json(properties, stack.resource_map)
    differences = []
    for name, attribute in CHECKED.items():
        if name in expected and str(expected[name]) != str(getattr(function, attribute)):
            differences.append(_difference(f"/{name}", expected[name], getattr(function, attribute)))
    wanted = {k: str(v) for k, v in ((expected.get("Environment") or {}).get("Variables") or {}).items()}
    live = {k: str(v) for k, v in (function.environment_vars or {}).items()}
    for key in sorted(set(wanted) | set(live)):
        if wanted.get(key) != live.get(key):
            kind = "ADD" if key not in wanted else "REMOVE" if key not in live else "NOT_EQUAL"
            differences.append(_difference(f"/Environment/Variables/{key}", wanted.get(key), live.get(key), kind))
    return ("MODIFIED" if differences else "IN_SYNC"), differences


def _alias_drift(stack: Stack, logical_id: str, properties: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    """The alias's drift: the version it serves and its additional versions' weights."""
    expected = parsing.clean_json(properties, stack.resource_map)
    backend = lambda_backends[stack.account_id][stack.region_name]
    try:
        function = str(expected["FunctionName"])
        alias = backend.get_alias(expected["Name"], function.split(":")[6] if function.startswith("arn:") else function)
    except Exception:  # moto raises its own not-found error
        return "DELETED", []
    differences = []
    if str(expected["FunctionVersion"]) != str(alias.function_version):
        differences.append(_difference("/FunctionVersion", str(expected["FunctionVersion"]), alias.function_version))
    routing: dict[str, Any] = expected.get("RoutingConfig") or {}
    weights = routing.get("AdditionalVersionWeights") or []
    wanted = {str(w["FunctionVersion"]): float(w["FunctionWeight"]) for w in weights}
    held: dict[str, Any] = alias.routing_config if isinstance(alias.routing_config, dict) else {}
    live = {str(k): float(v) for k, v in (held.get("AdditionalVersionWeights") or {}).items()}
    if wanted != live:
        differences.append(_difference("/RoutingConfig/AdditionalVersionWeights", wanted, live))
    return ("MODIFIED" if differences else "IN_SYNC"), differences


CHECKERS = {"AWS::Lambda::Function": _function_drift, "AWS::Lambda::Alias": _alias_drift}


def _difference(path: str, expected: Any, actual: Any, kind: str = "NOT_EQUAL") -> dict[str, str]:
    return {
        "PropertyPath": path,
        "ExpectedValue": json.dumps(expected),
        "ActualValue": json.dumps(actual),
        "DifferenceType": kind,
    }


def detect(stack: Stack) -> list[dict[str, Any]]:
    """Every resource's drift, as DescribeStackResourceDrifts answers it."""
    now, drifts = datetime.now(UTC), []
    for logical_id, resource in (stack.template_dict.get("Resources") or {}).items():
        if logical_id not in stack.resource_map:
            continue  # a resource its condition left out
        status, differences = "NOT_CHECKED", list[dict[str, str]]()
        if resource["Type"] in CHECKERS:
            status, differences = CHECKERS[resource["Type"]](stack, logical_id, resource.get("Properties", {}))
        drifts.append(
            {
                "StackId": stack.stack_id,
                "LogicalResourceId": logical_id,
                "ResourceType": resource["Type"],
                "PhysicalResourceId": str(getattr(stack.resource_map[logical_id], "physical_resource_id", logical_id)),
                "StackResourceDriftStatus": status,
                "PropertyDifferences": differences,
                "Timestamp": now,
            }
        )
    return drifts


def _detect_stack_drift(self: CloudFormationResponse) -> ActionResult:
    stack = _stack(self.cloudformation_backend, self._get_param("StackName"))
    detection_id = str(uuid.uuid4())
    drifts = detect(stack)
    _detections[detection_id] = {"stack": stack, "drifts": drifts, "at": datetime.now(UTC)}
    return ActionResult({"StackDriftDetectionId": detection_id})


def _describe_detection_status(self: CloudFormationResponse) -> ActionResult:
    detection_id = self._get_param("StackDriftDetectionId")
    found = _detections[detection_id]
    drifted = [d for d in found["drifts"] if d["StackResourceDriftStatus"] in ("MODIFIED", "DELETED")]
    return ActionResult(
        {
            "StackId": found["stack"].stack_id,
            "StackDriftDetectionId": detection_id,
            "StackDriftStatus": "DRIFTED" if drifted else "IN_SYNC",
            "DetectionStatus": "DETECTION_COMPLETE",
            "DriftedStackResourceCount": len(drifted),
            "Timestamp": found["at"],
        }
    )


def _describe_resource_drifts(self: CloudFormationResponse) -> ActionResult:
    stack = _stack(self.cloudformation_backend, self._get_param("StackName"))
    wanted = set(self._get_param("StackResourceDriftStatusFilters") or [])
    latest = [d for d in _detections.values() if d["stack"] is stack]
    drifts = latest[-1]["drifts"] if latest else []
    return ActionResult(
        {"StackResourceDrifts": [d for d in drifts if not wanted or d["StackResourceDriftStatus"] in wanted]}
    )


def _parameter_list(self: Stack) -> list[dict[str, str]]:
    no_echo = self.resource_map.no_echo_parameter_keys
    return [
        {
            "ParameterKey": key,
            "ParameterValue": "****"
            if key in no_echo
            else ",".join(map(str, value))
            if isinstance(value, list)
            else str(value),
        }
        for key, value in self.resource_map.resolved_parameters.items()
    ]


def install() -> None:
    """Teach the guards (idempotent)."""
    global _installed
    if _installed:
        return
    CloudFormationResponse.detect_stack_drift = _detect_stack_drift  # type: ignore[attr-defined]
    CloudFormationResponse.describe_stack_drift_detection_status = _describe_detection_status  # type: ignore[attr-defined]
    CloudFormationResponse.describe_stack_resource_drifts = _describe_resource_drifts  # type: ignore[attr-defined]
    Stack.parameter_list = property(_parameter_list)  # type: ignore[assignment,method-assign]
    _installed = True
