"""AWS rules the rollout meets that moto (5.2.x) forgives, enforced in the emulator with AWS's
error codes, so a rehearsal fails where a real account would:

1. CloudFormation: a `TemplateBody` over 51,200 bytes, a `TemplateURL` template over 1 MB, and
   Rules using a function Rules do not accept are refused (ValidationError).
2. CloudFormation: a change set name the stack already has is refused (AlreadyExistsException);
   executing a change set deletes the stack's other change sets and keeps the executed one.
3. CloudFormation: a resource whose service refuses it fails the stack as CloudFormation does
   (`CREATE_FAILED` -> `ROLLBACK_COMPLETE`, or `UPDATE_FAILED` -> `UPDATE_ROLLBACK_COMPLETE`,
   with the service's message as the reason) instead of failing the API call; removing a
   resource whose DeletionPolicy is Retain keeps it.
4. Lambda: an environment (names and values, measured as compact JSON) over 4 KB is refused
   (InvalidParameterValueException).
5. CloudFormation: an UpdateStack with the stack's own template and effective parameters is
   refused ("No updates are to be performed."), as AWS does, instead of running an update.
6. API Gateway: `AWS::ApiGateway::Account` is modelled (it sets the account's CloudWatch role,
   which must exist and trust apigateway.amazonaws.com); a WebSocket stage with access logging
   or execution logging in an account without that role is refused (BadRequestException).
7. CloudFormation: a stack keeps the service role (`RoleARN`) it was last given. A
   CreateChangeSet, UpdateStack or DeleteStack naming none runs as that role, ExecuteChangeSet as
   its change set's, and DescribeStacks shows it (moto records only the first and never uses
   it); an operation whose role does not exist or does not trust CloudFormation is refused
   (ValidationError "Role ... is invalid or cannot be assumed").

8. IAM is eventually consistent: with `iam_propagation(seconds)` (a fault a test injects; off by
   default, as moto), a role created less than `seconds` ago on the emulator's clock cannot be
   assumed yet: CloudFormation refuses it as a service role ("Role ... is invalid or cannot be
   assumed") and API Gateway as the account's CloudWatch role ("The role ARN does not have
   required permissions set to API Gateway"), as AWS does while a new role propagates.

`tests/emulator/test_aws_rules.py` shows each refusal.
"""

from __future__ import annotations

import contextlib
import email.utils
import inspect
import json
from collections.abc import Callable, Iterator
from typing import Any

from moto.apigateway.models import apigateway_backends
from moto.apigatewayv2.exceptions import BadRequestException
from moto.apigatewayv2.models import ApiGatewayV2Backend
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import AlreadyExistsException, ValidationError
from moto.cloudformation.models import ChangeSet, CloudFormationBackend, Event, Stack
from moto.cloudformation.responses import CloudFormationResponse
from moto.cloudformation.utils import get_stack_from_s3_url
from moto.core.common_models import CloudFormationModel
from moto.core.exceptions import JsonRESTError, ServiceException
from moto.iam.models import IAMBackend, Role, iam_backends
from werkzeug.serving import WSGIRequestHandler

from cfnlint_websocket.limits import RULE_FUNCTIONS, TEMPLATE_BODY_LIMIT, TEMPLATE_URL_LIMIT
from emulator import clock

LAMBDA_ENVIRONMENT_LIMIT = 4096
LOGGING_NEEDS_ROLE = "CloudWatch Logs role ARN must be set in account settings to enable logging"
ACCOUNT_ROLE_REFUSED = "The role ARN does not have required permissions set to API Gateway"

_installed = False


# 1. Template size and Rules -------------------------------------------------------------------


def template_problem(body: str | None, url: str | None, account_id: str, partition: str) -> str | None:
    """AWS's refusal of a template passed to CreateStack/UpdateStack/CreateChangeSet, or None."""
    if body is not None and len(body.encode()) > TEMPLATE_BODY_LIMIT:
        return (
            "1 validation error detected: Value at 'templateBody' failed to satisfy constraint: "
            f"Member must have length less than or equal to {TEMPLATE_BODY_LIMIT}"
        )
    if url and not body:
        body = get_stack_from_s3_url(url, account_id=account_id, partition=partition)
        if len(body.encode()) > TEMPLATE_URL_LIMIT:
            return f"Template may not exceed {TEMPLATE_URL_LIMIT} bytes in size."
    if not body:
        return None
    template = Stack.parse_template(body)
    for rule_name, rule in (template.get("Rules") or {}).items() if isinstance(template, dict) else ():
        for function in sorted(_functions(rule)):
            if function not in RULE_FUNCTIONS:
                return (
                    f"Template format error: Unsupported function {function} in Rules ({rule_name}); "
                    f"Rules support only {', '.join(sorted(RULE_FUNCTIONS))}"
                )
    return None


def _functions(node: Any) -> set[str]:
    """Every intrinsic function name used anywhere in `node`."""
    if isinstance(node, list):
        return set().union(*(_functions(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {key for key in node if key == "Ref" or key.startswith("Fn::") or key == "Condition"}
    return found.union(*(_functions(value) for value in node.values()))


def _checked_request(
    method: Callable[[CloudFormationResponse], Any],
) -> Callable[[CloudFormationResponse], Any]:
    def checked(self: CloudFormationResponse) -> Any:
        problem = template_problem(
            self._get_param("TemplateBody"), self._get_param("TemplateURL"), self.current_account, self.partition
        )
        if problem:
            raise ValidationError(message=problem)
        return method(self)

    return checked


def _no_op_update_refused(self: Any, incoming: list[dict[str, Any]] | None, body: str, old: Stack) -> None:
    """AWS compares the template and every parameter's effective value (given, previous or default);
    the stack's original text is compared, since moto edits its parsed template."""
    if not body or not isinstance(old.template, str):
        return
    template = Stack.parse_template(body)
    if not isinstance(template, dict) or template != Stack.parse_template(old.template):
        return
    defaults = {
        name: str(spec["Default"]) for name, spec in (template.get("Parameters") or {}).items() if "Default" in spec
    }
    given = self._get_param_values(incoming or [], old.parameters)
    effective_new = defaults | {k: str(v) for k, v in given.items()}
    if effective_new == defaults | {k: str(v) for k, v in old.parameters.items()}:
        raise ValidationError(old.name, message="No updates are to be performed.")


# 2. Change set names ----------------------------------------------------------------------------


def _live_stack(backend: CloudFormationBackend, stack_name: str) -> Stack | None:
    return next(
        (s for s in backend.stacks.values() if s.name == stack_name or s.stack_id == stack_name),
        None,
    )


def _create_change_set_once(original: Callable[..., Any]) -> Callable[..., Any]:
    def create(
        self: CloudFormationBackend,
        stack_name: str,
        change_set_name: str,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        stack = _live_stack(self, stack_name)
        if stack is not None and any(
            cs.change_set_name == change_set_name and cs.stack is stack for cs in self.change_sets.values()
        ):
            raise AlreadyExistsException(f"ChangeSet {change_set_name} already exists")
        return original(self, stack_name, change_set_name, *args, **kwargs)

    return create


# 3. Resource failures roll the stack back ---------------------------------------------------------


class ResourceFailed(Exception):
    """A service refused one resource of a stack operation."""

    def __init__(self, logical_id: str, resource_type: str, reason: str) -> None:
        super().__init__(f"{logical_id}: {reason}")
        self.logical_id, self.resource_type, self.reason = logical_id, resource_type, reason


def _service_message(error: Exception) -> str:
    return str(getattr(error, "message", "") or error)


def _failing_as_resource(original: Callable[..., Any]) -> Callable[..., Any]:
    def parse(logical_id: str, resource_json: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return original(logical_id, resource_json, *args, **kwargs)
        except (JsonRESTError, ServiceException) as error:
            raise ResourceFailed(logical_id, resource_json["Type"], _service_message(error)) from error

    return parse


def _execute_or_roll_back(original: Callable[..., Any]) -> Callable[..., Any]:
    def execute(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.describe_change_set(change_set_name)
        assert change_set is not None
        stack = change_set.stack
        before = (stack.template, dict(stack.template_dict), dict(stack.parameters))
        try:
            original(self, change_set_name, stack_name)
        except ResourceFailed as failure:
            _roll_back(stack, change_set.change_set_type, failure, before)
        for key, other in list(self.change_sets.items()):
            if other.stack is stack and other is not change_set:
                del self.change_sets[key]

    return execute


def _roll_back(
    stack: Stack, change_set_type: str, failure: ResourceFailed, before: tuple[Any, dict[str, Any], dict[str, Any]]
) -> None:
    creating = change_set_type == "CREATE"
    verb = "create" if creating else "update"
    _resource_event(stack, failure.logical_id, failure.resource_type, f"{verb.upper()}_FAILED", failure.reason)
    reason = f"The following resource(s) failed to {verb}: [{failure.logical_id}]. "
    if creating:
        stack.status = "ROLLBACK_IN_PROGRESS"
        stack._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=reason + "Rollback requested by user.")
        with contextlib.suppress(Exception):  # a half-made resource may refuse; AWS would retry
            stack.resource_map.delete()
        stack.status = "ROLLBACK_COMPLETE"
    else:
        stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
        stack._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", resource_status_reason=reason)
        template, template_dict, parameters = before
        stack.resource_map.update(template_dict, parameters)
        stack.template, stack.template_dict, stack.parameters = template, template_dict, parameters
        stack.status = "UPDATE_ROLLBACK_COMPLETE"
    stack.status_reason = reason  # type: ignore[attr-defined]
    stack._add_stack_event(stack.status)


def _resource_event(stack: Stack, logical_id: str, resource_type: str, status: str, reason: str) -> None:
    stack.events.append(
        Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical_id,
            physical_resource_id="",
            resource_type=resource_type,
            resource_status=status,
            resource_status_reason=reason,
            resource_properties=None,
        )
    )


def _delete_unless_retained(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete(self: parsing.ResourceMap, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
        if resource_json.get("DeletionPolicy") == "Retain":
            return
        original(self, parsed_resource, resource_json)

    return delete


# 4. Lambda environment size -------------------------------------------------------------------------


def check_environment(variables: dict[str, Any] | None) -> None:
    measured = json.dumps(variables or {}, separators=(",", ":"))
    if len(measured.encode()) > LAMBDA_ENVIRONMENT_LIMIT:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment variables "
            f"you have provided exceeded the 4KB limit. String measured: {measured}"
        )


def _create_function_checked(original: Callable[..., Any]) -> Callable[..., Any]:
    def create(self: LambdaBackend, spec: dict[str, Any]) -> Any:
        check_environment((spec.get("Environment") or {}).get("Variables"))
        return original(self, spec)

    return create


def _update_configuration_checked(original: Callable[..., Any]) -> Callable[..., Any]:
    def update(self: LambdaFunction, config_updates: dict[str, Any]) -> Any:
        if "Environment" in config_updates:
            check_environment((config_updates["Environment"] or {}).get("Variables"))
        return original(self, config_updates)

    return update


# 5. The account's API Gateway CloudWatch role ---------------------------------------------------------


def account_role(account_id: str, region_name: str) -> str | None:
    return apigateway_backends[account_id][region_name].get_account().cloudwatch_role_arn


def set_account_role(account_id: str, region_name: str, role_arn: str) -> None:
    """What UpdateAccount does: the role must exist, trust API Gateway and have propagated."""
    role_name = role_arn.rsplit("/", 1)[-1]
    roles = {role.name: role for role in iam_backends[account_id]["aws"].roles.values()}
    trusted = role_name in roles and "apigateway.amazonaws.com" in json.dumps(
        roles[role_name].assume_role_policy_document
    )
    if not trusted or propagating(roles[role_name]):
        raise BadRequestException(ACCOUNT_ROLE_REFUSED)
    apigateway_backends[account_id][region_name].update_account(
        [{"op": "replace", "path": "/cloudwatchRoleArn", "value": role_arn}]
    )


class ApiGatewayAccount(CloudFormationModel):
    """`AWS::ApiGateway::Account`: sets the account's CloudWatch role. Deleting it leaves the
    setting as it is (as AWS does)."""

    def __init__(self, role_arn: str, physical_id: str) -> None:
        self.role_arn, self.physical_id = role_arn, physical_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::Account"

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> ApiGatewayAccount:
        role_arn = cloudformation_json.get("Properties", {}).get("CloudWatchRoleArn", "")
        set_account_role(account_id, region_name, role_arn)
        return cls(role_arn, resource_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: ApiGatewayAccount,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ApiGatewayAccount:
        if not cloudformation_json.get("Properties", {}).get("CloudWatchRoleArn"):
            # Its Condition turned false: CloudFormation removes it, which leaves the setting as it
            # is; moto updates a resource whose condition turned false instead of removing it.
            return original_resource
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        return None

    def is_created(self) -> bool:
        return True


def _logs(config: dict[str, Any]) -> bool:
    level = str((config.get("defaultRouteSettings") or {}).get("loggingLevel") or "OFF").upper()
    return bool(config.get("accessLogSettings")) or level in ("ERROR", "INFO")


def _create_stage_checked(original: Callable[..., Any]) -> Callable[..., Any]:
    def create(self: ApiGatewayV2Backend, api_id: str, config: dict[str, Any]) -> Any:
        if _logs(config) and not account_role(self.account_id, self.region_name):
            raise BadRequestException(LOGGING_NEEDS_ROLE)
        return original(self, api_id, config)

    return create


# 7. A stack's service role ----------------------------------------------------------------------------


def role_problem(account_id: str, role_arn: str) -> str | None:
    """CloudFormation's refusal of a service role it cannot assume, or None."""
    role = next((r for r in iam_backends[account_id]["aws"].roles.values() if r.arn == role_arn), None)
    trusted = role is not None and "cloudformation.amazonaws.com" in json.dumps(role.assume_role_policy_document)
    if not trusted or propagating(role):
        return f"Role {role_arn} is invalid or cannot be assumed"
    return None


def _check_role(account_id: str, role_arn: str | None) -> None:
    problem = role_problem(account_id, role_arn) if role_arn else None
    if problem:
        raise ValidationError(message=problem)


def _with_role(original: Callable[..., Any], stack_parameter: str) -> Callable[..., Any]:
    """CreateStack, UpdateStack, CreateChangeSet: the role given, else the stack's own, checked and kept."""
    signature = inspect.signature(original)

    def operation(self: CloudFormationBackend, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        stack = _live_stack(self, bound.arguments[stack_parameter])
        role_arn = bound.arguments.get("role_arn") or (stack.role_arn if stack is not None else None)
        _check_role(self.account_id, role_arn)
        bound.arguments["role_arn"] = role_arn
        result = original(*bound.args, **bound.kwargs)
        if isinstance(result, Stack):
            result.role_arn = role_arn
        return result

    return operation


def _execute_as_change_set_role(original: Callable[..., Any]) -> Callable[..., Any]:
    def execute(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        change_set: ChangeSet | None = self.describe_change_set(change_set_name)
        role_arn = change_set.role_arn if change_set is not None else None
        _check_role(self.account_id, role_arn)
        original(self, change_set_name, stack_name)
        if change_set is not None:
            change_set.stack.role_arn = role_arn

    return execute


def _delete_as_stack_role(original: Callable[[CloudFormationResponse], Any]) -> Callable[[CloudFormationResponse], Any]:
    def delete(self: CloudFormationResponse) -> Any:
        stack = _live_stack(self.cloudformation_backend, self._get_param("StackName") or "")
        role_arn = self._get_param("RoleARN") or (stack.role_arn if stack is not None else None)
        _check_role(self.current_account, role_arn)
        if stack is not None:
            stack.role_arn = role_arn
        return original(self)

    return delete


# 8. IAM propagation -----------------------------------------------------------------------------------

_propagation_seconds = 0.0


@contextlib.contextmanager
def iam_propagation(seconds: float) -> Iterator[None]:
    """New roles are not usable for `seconds` on the emulator's clock (a fault a test injects)."""
    global _propagation_seconds
    before, _propagation_seconds = _propagation_seconds, seconds
    try:
        yield
    finally:
        _propagation_seconds = before


def propagating(role: Role | None) -> bool:
    created = role.__dict__.get("_emulator_created") if role is not None else None
    return created is not None and clock.now() - float(created) < _propagation_seconds


def _stamped_role(original: Callable[..., Any]) -> Callable[..., Any]:
    def create(self: IAMBackend, *args: Any, **kwargs: Any) -> Role:
        role = original(self, *args, **kwargs)
        role.__dict__["_emulator_created"] = clock.now()
        role.create_date = clock.utc()  # CreateDate on the emulator's clock, as its Date header is
        return role

    return create


def _date_on_emulator_clock(self: WSGIRequestHandler, timestamp: float | None = None) -> str:
    """Every response's Date header on the emulator's clock: a client that measures an age
    against the server's time (as AWS's own Date) sees the time a test advanced."""
    return email.utils.formatdate(clock.now() if timestamp is None else timestamp, usegmt=True)


def _wrap(owner: Any, name: str, wrapper: Callable[[Any], Any]) -> None:
    setattr(owner, name, wrapper(getattr(owner, name)))


def install() -> None:
    """Apply the rules (idempotent); call after `moto_gaps.install()`, whose execute it wraps."""
    global _installed
    if _installed:
        return
    for action in ("create_stack", "update_stack", "create_change_set", "validate_template"):
        _wrap(CloudFormationResponse, action, _checked_request)
    _wrap(
        CloudFormationResponse,
        "_validate_different_update",
        lambda _moto_check: _no_op_update_refused,
    )
    # inside the name check: it reads moto's own signature
    _wrap(CloudFormationBackend, "create_change_set", lambda original: _with_role(original, "stack_name"))
    _wrap(CloudFormationBackend, "create_change_set", _create_change_set_once)
    _wrap(CloudFormationBackend, "execute_change_set", _execute_or_roll_back)
    _wrap(parsing, "parse_and_create_resource", _failing_as_resource)
    _wrap(parsing, "parse_and_update_resource", _failing_as_resource)
    _wrap(parsing.ResourceMap, "_delete_resource", _delete_unless_retained)
    _wrap(LambdaBackend, "create_function", _create_function_checked)
    _wrap(LambdaFunction, "update_configuration", _update_configuration_checked)
    _wrap(ApiGatewayV2Backend, "create_stage", _create_stage_checked)
    _wrap(CloudFormationBackend, "create_stack", lambda original: _with_role(original, "name"))
    _wrap(CloudFormationBackend, "update_stack", lambda original: _with_role(original, "name"))
    _wrap(CloudFormationBackend, "execute_change_set", _execute_as_change_set_role)
    _wrap(CloudFormationResponse, "delete_stack", _delete_as_stack_role)
    _wrap(IAMBackend, "create_role", _stamped_role)
    WSGIRequestHandler.date_time_string = _date_on_emulator_clock  # type: ignore[method-assign, assignment]
    _installed = True
