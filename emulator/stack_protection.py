"""CloudFormation's protection of a live stack, which moto (5.2.x) lacks, taught so a rehearsal
meets it as an account would:

1. Termination protection: UpdateTerminationProtection sets it (moto has no such call),
   DescribeStacks shows `EnableTerminationProtection` as a boolean, and DeleteStack of a protected
   stack is refused with AWS's error (ValidationError "Stack [NAME] cannot be deleted while
   TerminationProtection is enabled"; moto deletes it).
2. A change set's Modify changes carry `Replacement` ("True", "False" or "Conditional"; moto
   gives none): a change of a property the resource type's provider schema lists as
   createOnly (cfn-lint's bundled schemas) replaces the resource; one that depends on a
   resource being replaced is Conditional.
3. Stack policies: SetStackPolicy validates the policy (JSON with a Statement list; a
   `LogicalResourceId/X` without wildcards must name a resource of the template: AWS's "Unknown
   logical id"), and executing an update change set evaluates it (moto stores it and ignores
   it): once a stack has a policy every resource is protected unless a statement allows the
   action (Update:Modify, Update:Replace for Replacement True or Conditional, Update:Delete),
   and a Deny wins. A denied change fails the update as CloudFormation does: the resource
   UPDATE_FAILED ("Action denied by stack policy: ..."), the stack UPDATE_ROLLBACK_COMPLETE,
   nothing changed.

`tests/emulator/test_stack_protection.py` shows each.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Callable
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import Change, ChangeSet, CloudFormationBackend, Stack
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult

from emulator.aws_rules import _resource_event

DENIED = "Action denied by stack policy"
_installed = False


# 1. Termination protection ---------------------------------------------------------------------


def _truthy(value: Any) -> bool:
    return str(value).lower() == "true"


def _update_termination_protection(self: CloudFormationResponse) -> ActionResult:
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    stack.enable_termination_protection = _truthy(self._get_param("EnableTerminationProtection"))
    return ActionResult({"StackId": stack.stack_id})


def _protected_delete(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_stack(self: CloudFormationResponse) -> Any:
        name = self._get_param("StackName")
        live = [s for s in self.cloudformation_backend.stacks.values() if name in (s.name, s.stack_id)]
        if live and _truthy(live[0].enable_termination_protection):
            raise ValidationError(
                message=f"Stack [{live[0].name}] cannot be deleted while TerminationProtection is enabled"
            )
        return original(self)

    return delete_stack


def _created_with_protection(original: Callable[..., Any]) -> Callable[..., Any]:
    """CreateStack's EnableTerminationProtection arrives as text ("false" is not protected)."""

    def init(self: Stack, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.enable_termination_protection = _truthy(self.enable_termination_protection)

    return init


# 2. Replacement in change sets ---------------------------------------------------------------------


@functools.cache
def create_only(resource_type: str) -> frozenset[str]:
    """The top-level properties whose change replaces a resource of this type (provider schema)."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    except Exception:  # a type cfn-lint does not know (custom resources): never replaced by a property
        return frozenset()
    return frozenset(p.split("/")[2] for p in schema.get("createOnlyProperties", []) if p.count("/") >= 2)


_SUB = re.compile(r"\$\{([^}!]+)\}")


def _resolve(value: Any, parameters: dict[str, Any], depends: set[str]) -> Any:
    """A property's value with parameters filled in; each resource it refers to is kept as a
    marker and added to `depends` (its value is known only once it exists)."""
    if isinstance(value, list):
        return [_resolve(v, parameters, depends) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        name = value["Ref"]
        if name in parameters:
            return parameters[name]
        if not str(name).startswith("AWS::"):
            depends.add(name)
        return {"Ref": name}
    if set(value) == {"Fn::Sub"}:
        text, names = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]

        def filled(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in names:
                return json.dumps(_resolve(names[name], parameters, depends))
            if name in parameters:
                return str(parameters[name])
            if "::" not in name:
                depends.add(name.split(".")[0])
            return match.group(0)

        return _SUB.sub(filled, text)
    if set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        depends.add(target[0] if isinstance(target, list) else str(target).split(".")[0])
        return value
    return {k: _resolve(v, parameters, depends) for k, v in value.items()}


def replacements(
    old: dict[str, Any], new: dict[str, Any], old_parameters: dict[str, Any], new_parameters: dict[str, Any]
) -> dict[str, str]:
    """Each resource in both templates: "True", "Conditional" or "False", as CloudFormation says."""
    both = [name for name in new if name in old]
    found: dict[str, str] = {}
    replaced: set[str] = set()
    for _ in range(len(both) + 1):  # until no replacement makes another one conditional
        for name in both:
            resource_type = new[name].get("Type", "")
            before, after = old[name].get("Properties") or {}, new[name].get("Properties") or {}
            verdict = "False" if old[name].get("Type") == resource_type else "True"
            for prop in sorted(create_only(resource_type)):
                depends: set[str] = set()
                was = _resolve(before.get(prop), old_parameters, set())
                will = _resolve(after.get(prop), new_parameters, depends)
                if was != will:
                    verdict = "True"
                    break
                if depends & replaced:
                    verdict = "Conditional"
            found[name] = verdict
        now = {name for name, verdict in found.items() if verdict != "False"}
        if now == replaced:
            break
        replaced = now
    return found


def _with_replacement(original: Callable[..., Any]) -> Callable[..., Any]:
    def diff(self: ChangeSet) -> list[Any]:
        changes = original(self)
        if self.change_set_type != "UPDATE":
            return changes
        resource_map = self.stack.resource_map
        defaults = {k: p.get("Default") for k, p in (self.template_dict.get("Parameters") or {}).items()}
        new_parameters = _texts({k: v for k, v in defaults.items() if v is not None} | dict(self.parameters))
        old_parameters = _texts(resource_map.resolved_parameters)
        verdicts = replacements(
            resource_map._resource_json_map, self.template_dict.get("Resources", {}), old_parameters, new_parameters
        )
        listed = {c.logical_resource_id for c in changes}
        old, new = resource_map._resource_json_map, self.template_dict.get("Resources", {})
        for name in new:  # moto misses a parameter change seen only through Fn::Sub
            if (
                name in old
                and name not in listed
                and _resolved(old[name], old_parameters) != _resolved(new[name], new_parameters)
            ):
                changes.append(Change(action="Modify", logical_resource_id=name, resource_type=new[name]["Type"]))
        for change in changes:
            if change.action == "Modify":
                change.replacement = verdicts.get(change.logical_resource_id, "False")
        return changes

    return diff


def _resolved(resource: dict[str, Any], parameters: dict[str, str]) -> Any:
    return _resolve(resource, parameters, set())


def _texts(parameters: Any) -> dict[str, str]:
    """Parameter values as text (a CommaDelimitedList joined), as a change set gives them."""
    return {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in dict(parameters).items()}


# 3. Stack policies -----------------------------------------------------------------------------------


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def check_policy(body: str, resources: dict[str, Any]) -> dict[str, Any]:
    """The policy as AWS accepts it, else ValidationError naming what is wrong."""
    try:
        policy = json.loads(body)
    except ValueError as error:
        raise ValidationError(message=f"Error validating stack policy: Invalid stack policy: {error}") from None
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    if not isinstance(statements, list) or not statements:
        raise ValidationError(message="Error validating stack policy: Invalid stack policy: Statement is missing")
    for statement in statements:
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise ValidationError(message=f"Error validating stack policy: Invalid effect in statement {statement}")
        for resource in _listed(statement.get("Resource")) + _listed(statement.get("NotResource")):
            logical = resource.removeprefix("LogicalResourceId/")
            if resource != "*" and not any(c in logical for c in "*?") and logical not in resources:
                raise ValidationError(
                    message=f"Error validating stack policy: Unknown logical id '{resource}' in statement "
                    f"{json.dumps(statement)} - stack policies can only be applied to logical ids referenced "
                    "in the template"
                )
    return dict(policy)


def _matches(patterns: list[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _applies(statement: dict[str, Any], action: str, logical_id: str, resource_type: str) -> bool:
    if "Action" in statement and not _matches(_listed(statement["Action"]), action):
        return False
    if "NotAction" in statement and _matches(_listed(statement["NotAction"]), action):
        return False
    resource = f"LogicalResourceId/{logical_id}"
    if "Resource" in statement and not _matches(_listed(statement["Resource"]), resource):
        return False
    if "NotResource" in statement and _matches(_listed(statement["NotResource"]), resource):
        return False
    for operator, tests in (statement.get("Condition") or {}).items():
        wanted = _listed((tests or {}).get("ResourceType"))
        like = operator == "StringLike"
        if wanted and not any(fnmatch.fnmatchcase(resource_type, w) if like else resource_type == w for w in wanted):
            return False
    return True


def denial(policy: dict[str, Any], action: str, logical_id: str, resource_type: str) -> str | None:
    """Why the policy refuses the action on the resource (None: allowed). Deny wins over Allow;
    without an Allow the action is refused (a policy protects every resource by default)."""
    allowed = False
    for number, statement in enumerate(policy["Statement"], 1):
        if not _applies(statement, action, logical_id, resource_type):
            continue
        if statement["Effect"] == "Deny":
            return (
                f"{DENIED}: Statement [#{number}] does not allow [{action}] for resource "
                f"[LogicalResourceId/{logical_id}]"
            )
        allowed = True
    if allowed:
        return None
    return f"{DENIED}: no statement allows [{action}] for resource [LogicalResourceId/{logical_id}]"


def action_of(change: Any) -> str | None:
    if change.action == "Remove":
        return "Update:Delete"
    if change.action == "Modify":
        return "Update:Replace" if getattr(change, "replacement", "False") != "False" else "Update:Modify"
    return None  # a new resource: stack policies govern only existing ones


def _set_stack_policy(original: Callable[..., Any]) -> Callable[..., Any]:
    def set_stack_policy(self: CloudFormationResponse) -> Any:
        body = self._get_param("StackPolicyBody")
        if body:
            stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
            check_policy(body, (stack.template_dict or {}).get("Resources") or {})
        return original(self)

    return set_stack_policy


def _execute_within_policy(original: Callable[..., Any]) -> Callable[..., Any]:
    def execute(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.describe_change_set(change_set_name)
        assert change_set is not None
        stack = change_set.stack
        if change_set.change_set_type == "UPDATE" and stack.policy:
            policy = json.loads(stack.policy)
            for change in change_set.changes:
                action = action_of(change)
                reason = action and denial(policy, action, change.logical_resource_id, change.resource_type)
                if reason:
                    _refused(stack, change_set, change, reason)
                    return
        original(self, change_set_name, stack_name)

    return execute


def _refused(stack: Stack, change_set: ChangeSet, change: Any, reason: str) -> None:
    """The update fails on the denied resource and rolls back; nothing changed."""
    stack.status = "UPDATE_IN_PROGRESS"
    stack._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
    _resource_event(stack, change.logical_resource_id, change.resource_type, "UPDATE_FAILED", reason)
    summary = f"The following resource(s) failed to update: [{change.logical_resource_id}]. "
    stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
    stack._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", resource_status_reason=summary)
    stack.status = "UPDATE_ROLLBACK_COMPLETE"
    stack.status_reason = summary  # type: ignore[attr-defined]
    stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
    change_set.execution_status = "EXECUTE_FAILED"


def _wrap(owner: Any, name: str, wrapper: Callable[[Any], Any]) -> None:
    setattr(owner, name, wrapper(getattr(owner, name)))


def install() -> None:
    """Teach the protections (idempotent); after aws_rules, whose execute this one wraps."""
    global _installed
    if _installed:
        return
    CloudFormationResponse.update_termination_protection = _update_termination_protection  # type: ignore[attr-defined]
    _wrap(CloudFormationResponse, "delete_stack", _protected_delete)
    _wrap(Stack, "__init__", _created_with_protection)
    _wrap(ChangeSet, "diff", _with_replacement)
    _wrap(CloudFormationResponse, "set_stack_policy", _set_stack_policy)
    _wrap(CloudFormationBackend, "execute_change_set", _execute_within_policy)
    _installed = True
