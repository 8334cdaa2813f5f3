"""Everything the rehearsal compensates in moto (5.2.x), in one place.

1. moto's CloudFormation silently skips `AWS::ApiGatewayV2::*`. The model classes below teach
   it Api, Route, Integration and Stage through moto's own extension point (subclasses of
   `CloudFormationModel`, found via `__subclasses__()`), creating the real objects in moto's
   apigatewayv2 backend, with their Ref and GetAtt values.
2. After `execute_change_set`, moto keeps the stack's old template, parameters, outputs and
   tags: they are rebuilt from the change set, as CloudFormation does.
3. A change set's list of changes ignores parameter-only changes: it is computed with the
   parameters, as moto's own stack update does.
4. `Fn::If` yielding `AWS::NoValue` inside a list leaves a null item (CloudFormation drops
   it), which breaks e.g. a role's conditional inline policies: nulls are dropped from lists.
5. Lambda's GetFunctionConfiguration has no RevisionId: one is derived from the configuration
   (it changes whenever the configuration does), so a state machine can pass it on.
6. A CloudFormation StateMachine given `Definition` (an object) and `DefinitionSubstitutions`
   gets an empty definition, and lands in the backend the Step Functions API does not use once
   state machines execute: the definition string is built first, and the machine is created in
   the API's backend.
7. A change set adds resources in template order, ignoring `DependsOn`, and a stack's create
   orders by `DependsOn` alone while a reference creates the named resource on the spot (before
   that one's own `DependsOn`): both add resources after everything they depend on or reference.
8. `AWS::CloudWatch::Alarm` is silently skipped too: `emulator/alarms.py` models it, so
   the bake step and `rollout status` find the stacks' alarms (tests drive them with SetAlarmState);
   it also starts alarms in INSUFFICIENT_DATA and makes DescribeAlarms apply all its filters.
9. An `AWS::KMS::Key` with Tags crashes moto's create (it reads CloudFormation's `Key`/`Value` as
   the KMS API's `TagKey`/`TagValue`): the tags are handed over in the API's shape.
10. An `AWS::Lambda::Function` created or updated by CloudFormation loses `Architectures` (it runs
   as x86_64), `KmsKeyArn` and `TracingConfig`, and moto's Lambda has no `LoggingConfig` at all:
   they are carried over (GetFunctionConfiguration answers `LoggingConfig` as Lambda does, its
   default `/aws/lambda/<name>` when none was given), so the rehearsal can prove the functions run
   on the architecture the handlers zip was built for, under the chosen key, logging to the
   stack's log groups.
11. A stack update that modifies a resource whose type moto cannot update (a log group, a KMS key,
   a topic...) replaces it with nothing: the resource vanishes from the stack and everything
   referencing it fails ("Fn::GetAtt references undefined resource"). CloudFormation updates it
   in place; here it stays as it was, and a log group is taught its update (retention and key).
12. Step Functions' GetExecutionHistory ignores `maxResults` and `nextToken` (every call answers
   the whole history). Here it pages as AWS does: at most `maxResults` events (default 100, at
   most 1000) in the order asked (`reverseOrder`), with a `nextToken` for the rest.
13. Deleting a stack leaves its `AWS::IAM::ManagedPolicy` in IAM, so the stack cannot be created
   again (the named policy exists). CloudFormation deletes it; IAM refuses while the policy is
   attached to anything (DeleteConflict), and so does the emulator.

`tests/emulator/test_moto_gaps.py` checks each gap still exists, so a moto upgrade that fixes
one makes a test fail and this module can shrink.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from moto.apigatewayv2.models import ApiGatewayV2Backend, apigatewayv2_backends
from moto.awslambda.models import LambdaFunction
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.cloudformation.models import ChangeSet, CloudFormationBackend
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult
from moto.iam.exceptions import DeleteConflictException
from moto.iam.models import ManagedPolicy, iam_backends
from moto.kms.models import Key as KmsKey
from moto.logs.models import LogGroup
from moto.stepfunctions.models import StateMachine, cfn_to_api_tags
from moto.stepfunctions.responses import StepFunctionResponse
from moto.utilities.utils import get_partition

from emulator import alarms
from emulator.alarms import CloudWatchAlarm

_installed = False
SUB_NAME = re.compile(r"\$\{([^!}][^}]*)\}")


def _backend(account_id: str, region_name: str) -> ApiGatewayV2Backend:
    return apigatewayv2_backends[account_id][region_name]


def _camel(settings: dict[str, Any] | None) -> dict[str, Any]:
    """CloudFormation's PascalCase property names -> the API's camelCase."""
    return {k[0].lower() + k[1:]: v for k, v in (settings or {}).items()}


class WebSocketApi(CloudFormationModel):
    def __init__(self, api: Any, account_id: str, region_name: str) -> None:
        self.api, self.account_id, self.region_name = api, account_id, region_name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Api"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("ApiEndpoint", "ApiId")

    @property
    def physical_resource_id(self) -> str:
        return str(self.api.api_id)

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "ApiEndpoint":
            return self.api.api_endpoint
        if attribute_name == "ApiId":
            return self.api.api_id
        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> WebSocketApi:
        props = cloudformation_json["Properties"]
        api = _backend(account_id, region_name).create_api(
            api_key_selection_expression=props.get("ApiKeySelectionExpression", ""),
            cors_configuration=props.get("CorsConfiguration"),
            description=props.get("Description", ""),
            disable_schema_validation=props.get("DisableSchemaValidation", ""),
            disable_execute_api_endpoint=props.get("DisableExecuteApiEndpoint", ""),
            name=props.get("Name", resource_name),
            protocol_type=props["ProtocolType"],
            route_selection_expression=props.get("RouteSelectionExpression", ""),
            tags=props.get("Tags") or {},
            version=props.get("Version", ""),
        )
        return cls(api, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: WebSocketApi,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> WebSocketApi:
        props = cloudformation_json["Properties"]
        original_resource.api.name = props.get("Name", original_resource.api.name)
        original_resource.api.description = props.get("Description", original_resource.api.description)
        original_resource.api.route_selection_expression = props.get(
            "RouteSelectionExpression", original_resource.api.route_selection_expression
        )
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        _backend(account_id, region_name).apis.pop(resource_name, None)

    def delete(self, account_id: str, region_name: str) -> None:
        """When its stack is deleted (moto calls this, given the resource itself)."""
        _backend(account_id, region_name).apis.pop(self.api.api_id, None)

    def is_created(self) -> bool:
        return True


class WebSocketChild:
    """Common ground of the API's children (route, integration, stage). Each child also
    subclasses CloudFormationModel directly: moto finds models by `__subclasses__()`."""

    collection = ""  # the Api attribute holding these children, by physical id
    id_attribute = ""  # the child's own id attribute, kept across an update ("" for stages: the name)

    def __init__(self, api_id: str, child: Any, physical_id: str) -> None:
        self.api_id, self.child, self.physical_id = api_id, child, physical_id

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        raise NotImplementedError

    @classmethod
    def delete_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        api = _backend(account_id, region_name).apis.get(cloudformation_json["Properties"]["ApiId"])
        if api is not None:
            getattr(api, cls.collection).pop(resource_name, None)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: WebSocketChild,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> WebSocketChild:
        """In place, as CloudFormation updates these (only a new ApiId replaces one): the child is
        rebuilt from the new properties under its old id, so what references it stays valid."""
        old_id = original_resource.physical_id
        cls.delete_from_cloudformation_json(
            old_id, {"Properties": {"ApiId": original_resource.api_id}}, account_id, region_name
        )
        new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
        if cls.id_attribute and new.api_id == original_resource.api_id:
            children = getattr(_backend(account_id, region_name).apis[new.api_id], cls.collection)
            children[old_id] = children.pop(new.physical_id)
            setattr(new.child, cls.id_attribute, old_id)
            new.physical_id = old_id
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        """When its stack is deleted: moto hands the resource, whose ApiId is resolved (the
        template's is a Ref)."""
        self.delete_from_cloudformation_json(
            self.physical_id, {"Properties": {"ApiId": self.api_id}}, account_id, region_name
        )

    def is_created(self) -> bool:
        return True


class WebSocketRoute(WebSocketChild, CloudFormationModel):
    collection = "routes"
    id_attribute = "route_id"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Route"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> WebSocketRoute:
        p = cloudformation_json["Properties"]
        route = _backend(account_id, region_name).create_route(
            api_id=p["ApiId"],
            api_key_required=p.get("ApiKeyRequired", False),
            authorization_scopes=p.get("AuthorizationScopes", []),
            authorization_type=p.get("AuthorizationType", "NONE"),
            authorizer_id=p.get("AuthorizerId", ""),
            model_selection_expression=p.get("ModelSelectionExpression", ""),
            operation_name=p.get("OperationName", ""),
            request_models=p.get("RequestModels"),
            request_parameters=p.get("RequestParameters"),
            route_key=p["RouteKey"],
            route_response_selection_expression=p.get("RouteResponseSelectionExpression", ""),
            target=p.get("Target", ""),
        )
        return cls(p["ApiId"], route, route.route_id)


class WebSocketIntegration(WebSocketChild, CloudFormationModel):
    collection = "integrations"
    id_attribute = "id"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Integration"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> WebSocketIntegration:
        p = cloudformation_json["Properties"]
        integration = _backend(account_id, region_name).create_integration(
            api_id=p["ApiId"],
            connection_id=p.get("ConnectionId", ""),
            connection_type=p.get("ConnectionType", ""),
            content_handling_strategy=p.get("ContentHandlingStrategy", ""),
            credentials_arn=p.get("CredentialsArn", ""),
            description=p.get("Description", ""),
            integration_method=p.get("IntegrationMethod", ""),
            integration_subtype=p.get("IntegrationSubtype", ""),
            integration_type=p["IntegrationType"],
            integration_uri=p.get("IntegrationUri", ""),
            passthrough_behavior=p.get("PassthroughBehavior", ""),
            payload_format_version=p.get("PayloadFormatVersion", ""),
            request_parameters=p.get("RequestParameters"),
            request_templates=p.get("RequestTemplates"),
            response_parameters=p.get("ResponseParameters"),
            template_selection_expression=p.get("TemplateSelectionExpression", ""),
            timeout_in_millis=str(p.get("TimeoutInMillis", "")),
            tls_config=p.get("TlsConfig") or {},
        )
        return cls(p["ApiId"], integration, integration.id)


class WebSocketAuthorizer(WebSocketChild, CloudFormationModel):
    """A Lambda REQUEST authorizer (emulator/websocket_authorizer.py runs it on `$connect`)."""

    collection = "authorizers"
    id_attribute = "id"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Authorizer"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> WebSocketAuthorizer:
        p = cloudformation_json["Properties"]
        authorizer = _backend(account_id, region_name).create_authorizer(
            api_id=p["ApiId"],
            auth_creds_arn=p.get("AuthorizerCredentialsArn", ""),
            auth_payload_format_version=p.get("AuthorizerPayloadFormatVersion", ""),
            auth_result_ttl=p.get("AuthorizerResultTtlInSeconds", ""),
            authorizer_uri=p.get("AuthorizerUri", ""),
            authorizer_type=p["AuthorizerType"],
            enable_simple_response=p.get("EnableSimpleResponses", ""),
            identity_source=p.get("IdentitySource", []),
            identity_validation_expr=p.get("IdentityValidationExpression", ""),
            jwt_config=p.get("JwtConfiguration", {}),
            name=p["Name"],
        )
        return cls(p["ApiId"], authorizer, authorizer.id)


class WebSocketStage(WebSocketChild, CloudFormationModel):
    collection = "stages"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Stage"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> WebSocketStage:
        p = cloudformation_json["Properties"]
        config = {
            "stageName": p["StageName"],
            "autoDeploy": p.get("AutoDeploy"),
            "description": p.get("Description"),
            "defaultRouteSettings": _camel(p.get("DefaultRouteSettings")),
            "accessLogSettings": _camel(p.get("AccessLogSettings")),
            "routeSettings": {key: _camel(settings) for key, settings in (p.get("RouteSettings") or {}).items()},
            "stageVariables": p.get("StageVariables") or {},
            "tags": p.get("Tags") or {},
        }
        stage = _backend(account_id, region_name).create_stage(p["ApiId"], config)
        return cls(p["ApiId"], stage, stage.name)


MODELED_TYPES = tuple(
    cls.cloudformation_type()
    for cls in (
        WebSocketApi,
        WebSocketRoute,
        WebSocketIntegration,
        WebSocketAuthorizer,
        WebSocketStage,
        CloudWatchAlarm,
    )
)


def _execute_and_refresh(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
    """moto's execute_change_set, then the stack's template, parameters and outputs rebuilt."""
    _original_execute(self, change_set_name, stack_name)
    change_set = self.describe_change_set(change_set_name)
    assert change_set is not None
    stack = self.stacks[change_set.stack_id]
    stack.template_dict = change_set.template_dict
    stack.parameters = dict(change_set.parameters)
    stack.output_map = stack._create_output_map()
    if change_set.tags:
        stack.tags = dict(change_set.tags)
    stack.description = change_set.template_dict.get("Description")


def _diff_with_parameters(self: ChangeSet) -> list[Any]:
    """The change set's changes, counting resources whose parameters changed (moto's update does)."""
    from moto.cloudformation.models import Change

    resource_map = self.stack.resource_map
    names = resource_map.build_resource_diff(self.template_dict, self.parameters)
    new, old = self.template_dict.get("Resources", {}), resource_map._resource_json_map
    changes = []
    for action, logical_ids in names.items():
        for logical_id in dict.fromkeys(logical_ids):
            resource = new.get(logical_id) or old[logical_id]
            changes.append(Change(action=action, logical_resource_id=logical_id, resource_type=resource["Type"]))
    return changes


def _clean_json_without_novalue(resource_json: Any, resources_map: Any) -> Any:
    cleaned = _original_clean_json(resource_json, resources_map)
    if isinstance(resource_json, list):
        return [item for item in cleaned if item is not None]
    return cleaned


def _configuration_with_revision(self: LambdaFunction, on_create: bool = False) -> dict[str, Any]:
    config = _original_get_configuration(self, on_create)
    given = getattr(self, "logging_config", None) or {}
    config["LoggingConfig"] = {
        "LogFormat": given.get("LogFormat", "Text"),
        "LogGroup": given.get("LogGroup", f"/aws/lambda/{self.function_name}"),
    }
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    config.setdefault("RevisionId", str(uuid.UUID(digest[:32])))
    return config


_original_function_create = LambdaFunction.create_from_cloudformation_json
_original_function_update = LambdaFunction.update_from_cloudformation_json


def _carry_function_properties(function: LambdaFunction, properties: dict[str, Any]) -> LambdaFunction:
    """What CloudFormation passes on to Lambda and moto drops (absent means Lambda's default)."""
    function.architectures = list(properties.get("Architectures") or ["x86_64"])
    function.kms_key_arn = properties.get("KmsKeyArn") or None
    function.tracing_config = properties.get("TracingConfig") or {"Mode": "PassThrough"}
    function.logging_config = properties.get("LoggingConfig") or {}  # type: ignore[attr-defined]
    return function


def _function_created(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], *args: Any, **kwargs: Any
) -> LambdaFunction:
    created = _original_function_create(resource_name, cloudformation_json, *args, **kwargs)
    return _carry_function_properties(created, cloudformation_json.get("Properties", {}))


def _function_updated(
    cls: type,
    original_resource: LambdaFunction,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> LambdaFunction:
    """moto calls this with keywords: the names are moto's."""
    updated = _original_function_update(
        original_resource=original_resource,
        new_resource_name=new_resource_name,
        cloudformation_json=cloudformation_json,
        account_id=account_id,
        region_name=region_name,
    )
    return _carry_function_properties(updated, cloudformation_json.get("Properties", {}))


def _with_definition_string(cloudformation_json: dict[str, Any]) -> dict[str, Any]:
    props = dict(cloudformation_json.get("Properties", {}))
    if "Definition" in props and "DefinitionString" not in props:
        text = json.dumps(props.pop("Definition"))
        for key, value in (props.pop("DefinitionSubstitutions", None) or {}).items():
            text = text.replace("${" + key + "}", str(value))
        props["DefinitionString"] = text
    return {**cloudformation_json, "Properties": props}


def _create_state_machine(
    cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
) -> Any:
    from moto.stepfunctions.responses import get_backend

    props = _with_definition_string(cloudformation_json)["Properties"]
    return get_backend(account_id, region_name).create_state_machine(
        props.get("StateMachineName", resource_name),
        props["DefinitionString"],
        props.get("RoleArn", ""),
        tags=cfn_to_api_tags(props.get("Tags", [])),
    )


def _update_state_machine(
    cls: Any,
    original_resource: Any,
    new_resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
) -> Any:
    return _original_update_state_machine.__func__(  # type: ignore[attr-defined]
        cls,
        original_resource,
        new_resource_name,
        _with_definition_string(cloudformation_json),
        account_id,
        region_name,
    )


def _references(node: Any) -> set[str]:
    """Logical ids a resource's properties name (Ref, GetAtt, `${...}` in Fn::Sub)."""
    if isinstance(node, list):
        return set().union(*map(_references, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found: set[str] = set()
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            found.add(value)
        elif key == "Fn::GetAtt":
            found.add(str(value[0] if isinstance(value, list) else value).split(".")[0])
        elif key == "Fn::Sub":
            text = value[0] if isinstance(value, list) else value
            found |= {name.split(".")[0] for name in SUB_NAME.findall(str(text))}
        found |= _references(value)
    return found


def in_dependency_order(resources: dict[str, Any]) -> dict[str, Any]:
    """The same resources, each after everything it depends on: what its DependsOn names, and what
    it references (moto creates a referenced resource on the spot, before that one's DependsOn)."""
    ordered: dict[str, Any] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered or name not in resources or name in path:
            return
        depends = resources[name].get("DependsOn") or []
        named = [depends] if isinstance(depends, str) else depends
        referenced = _references([resources[name].get("Properties"), resources[name].get("Metadata")])
        for dependency in [*named, *sorted(referenced)]:
            visit(dependency, (*path, name))
        ordered[name] = resources[name]

    for name in resources:
        visit(name, ())
    return ordered


def _update_in_dependency_order(
    self: parsing.ResourceMap, template: dict[str, Any], parameters: dict[str, Any] | None = None
) -> None:
    ordered = {**template, "Resources": in_dependency_order(template.get("Resources", {}))}
    _original_update(self, ordered, parameters)


def _create_in_dependency_order(self: parsing.ResourceMap, template: dict[str, Any]) -> bool:
    ordered = {**template, "Resources": in_dependency_order(template.get("Resources", {}))}
    return bool(_original_create(self, ordered))


def _kept_when_not_updatable(
    logical_id: str, resource_json: dict[str, Any], resources_map: parsing.ResourceMap, *args: Any, **kwargs: Any
) -> Any:
    updated = _original_parse_and_update(logical_id, resource_json, resources_map, *args, **kwargs)
    if updated is not None:
        return updated
    return resources_map._parsed_resources.get(logical_id)


def _log_group_updated(
    cls: type,
    original_resource: LogGroup,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> LogGroup:
    """What the rollout changes on its log groups, in place: retention and key."""
    properties = cloudformation_json.get("Properties", {})
    original_resource.retention_in_days = properties.get("RetentionInDays")
    original_resource.kms_key_id = properties.get("KmsKeyId")
    return original_resource


_original_parse_and_update = parsing.parse_and_update_resource
_original_update = parsing.ResourceMap.update
_original_create = parsing.ResourceMap.create
_original_update_state_machine = StateMachine.update_from_cloudformation_json
_original_get_configuration = LambdaFunction.get_configuration
_original_execute = CloudFormationBackend.execute_change_set
_original_clean_json = parsing.clean_json


_original_key_create = KmsKey.create_from_cloudformation_json


def _key_with_api_tags(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], *args: Any, **kwargs: Any
) -> Any:
    props = cloudformation_json.get("Properties", {})
    tags = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props.get("Tags") or []]
    fixed = {**cloudformation_json, "Properties": {**props, "Tags": tags}}
    return _original_key_create(resource_name, fixed, *args, **kwargs)


HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX = 100, 1000


def _paged_history(original: Any) -> Any:
    def get_execution_history(self: StepFunctionResponse) -> Any:
        answer = original(self)
        events = list(answer.result["events"])
        if self._get_param("reverseOrder") and events and events[0]["id"] < events[-1]["id"]:
            events.reverse()
        size = min(int(self._get_param("maxResults") or HISTORY_PAGE_DEFAULT), HISTORY_PAGE_MAX)
        start = int(self._get_param("nextToken") or 0)
        page: dict[str, Any] = {"events": events[start : start + size]}
        if start + size < len(events):
            page["nextToken"] = str(start + size)
        return ActionResult(page)

    return get_execution_history


def _managed_policy_deleted(self: ManagedPolicy, account_id: str, region_name: str) -> None:
    """Gap 13: a stack's managed policy goes with the stack, unless something still uses it."""
    if self.attachment_count:
        raise DeleteConflictException("Cannot delete a policy attached to entities.")
    iam_backends[account_id][get_partition(region_name)].delete_policy(self.arn)


def install() -> None:
    """Apply the compensations (idempotent). The model classes register on import."""
    global _installed
    if _installed:
        return
    CloudFormationBackend.execute_change_set = _execute_and_refresh  # type: ignore[method-assign]
    ChangeSet.diff = _diff_with_parameters  # type: ignore[method-assign]
    parsing.clean_json = _clean_json_without_novalue
    parsing.ResourceMap.update = _update_in_dependency_order  # type: ignore[method-assign]
    parsing.parse_and_update_resource = _kept_when_not_updatable
    LogGroup.update_from_cloudformation_json = classmethod(_log_group_updated)  # type: ignore[method-assign,assignment]
    parsing.ResourceMap.create = _create_in_dependency_order  # type: ignore[method-assign]
    LambdaFunction.get_configuration = _configuration_with_revision  # type: ignore[method-assign]
    StateMachine.create_from_cloudformation_json = classmethod(_create_state_machine)  # type: ignore[method-assign,assignment]
    StateMachine.update_from_cloudformation_json = classmethod(_update_state_machine)  # type: ignore[method-assign,assignment]
    KmsKey.create_from_cloudformation_json = classmethod(_key_with_api_tags)  # type: ignore[method-assign,assignment]
    LambdaFunction.create_from_cloudformation_json = classmethod(_function_created)  # type: ignore[method-assign,assignment]
    LambdaFunction.update_from_cloudformation_json = classmethod(_function_updated)  # type: ignore[method-assign,assignment]
    StepFunctionResponse.get_execution_history = _paged_history(StepFunctionResponse.get_execution_history)  # type: ignore[method-assign]
    ManagedPolicy.delete = _managed_policy_deleted  # type: ignore[attr-defined]
    alarms.install()
    _installed = True
