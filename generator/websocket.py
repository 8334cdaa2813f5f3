"""The `websocket` template: the API Gateway WebSocket API in front of the three handlers.

Replaces the original Terraform module (`cc-websocket-api`, stage `prod`) with the same defaults,
but scoped tighter: each Lambda permission names this API, stage and route; the management-API
grant names this API and stage; data tracing (message bodies, i.e. patient data) is off unless
asked for; and the account-level CloudWatch role that execution logging needs can be created.
"""

from __future__ import annotations

import json

from awacs.aws import Allow, PolicyDocument, Statement
from awacs.execute_api import ManageConnections
from troposphere import (
    Equals,
    GetAtt,
    If,
    Join,
    Not,
    Ref,
    Sub,
    Template,
)
from troposphere.apigatewayv2 import (
    AccessLogSettings,
    Api,
    Authorizer,
    Integration,
    Route,
    RouteSettings,
    Stage,
)
from troposphere.awslambda import Permission
from troposphere.iam import PolicyType

from generator import account_role
from generator.common import (
    add_log_parameters,
    add_name_prefix,
    finish,
    log_group,
    new_template,
    tag_map,
)
from generator.model import (
    API_NAME,
    HANDLERS_ROLE_NAME,
    ROUTE_HANDLERS,
    HandlerFunction,
)
from generator.monitoring import add_websocket_parameters, dashboard, websocket_alarms
from generator.names import Names
from generator.parameters import ParameterSet
from generator.versions import alias_arn

FUNCTION_ARN_PATTERN = (
    r"^$|^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]+)?$"
)
ROLE_NAME_PATTERN = r"^$|^[A-Za-z0-9+=,.@_-]{1,64}$"

# The original module's access-log fields that WebSocket APIs define (its protocol,
# responseLength and integrationErrorMessage are HTTP/REST-only; integration.error replaces the
# last), requestId first (API Gateway requires it).
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "sourceIp": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "integrationError": "$context.integration.error",
    "errorMessage": "$context.error.message",
    "connectionId": "$context.connectionId",
    "eventType": "$context.eventType",
    "messageId": "$context.messageId",
    "integrationLatency": "$context.integrationLatency",
    "stage": "$context.stage",
}
ACCESS_LOG_FORMAT = json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":"))

EXECUTE_API_ARN = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}"
MANAGEMENT_ENDPOINT = "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"
INVOKE_URL = "wss://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"


def _parameters(params: ParameterSet) -> None:
    naming = "Naming"
    add_name_prefix(
        params,
        "Prefix of every name (cc gives the original cc-websocket-api); one per environment sharing an account.",
    )
    params.add(
        naming,
        "StageName",
        "Stage name",
        Type="String",
        Default="prod",
        AllowedPattern=r"^[A-Za-z0-9_-]{1,128}$",
        Description="WebSocket stage name, part of every URL. '$default' breaks WebSocket APIs.",
        ConstraintDescription="1-128 letters, digits, '-' or '_' (so never '$default')",
    )
    functions = "Handler functions"
    for route in ROUTE_HANDLERS:
        params.add(
            functions,
            route.arn_parameter,
            f"{route.route_key} function ARN",
            Type="String",
            Default="",
            AllowedPattern=FUNCTION_ARN_PATTERN,
            Description=f"ARN of the {route.route_key} Lambda function (the compute stack's "
            f"{route.logical}AliasArn output: its live alias). Empty: {route.display_name}:live in this "
            "account and region.",
            ConstraintDescription="empty, or a Lambda function ARN",
        )
    params.add(
        functions,
        "HandlersRoleName",
        "Handlers role name",
        Type="String",
        Default="",
        AllowedPattern=ROLE_NAME_PATTERN,
        Description="Execution role of the handler functions, granted the management API of "
        "this stage (the compute stack's HandlersRoleName). Empty: <NamePrefix>-websocket-handlers.",
        ConstraintDescription="empty, or an IAM role name",
    )
    params.add(
        functions,
        "ManageConnectionsRoleNames",
        "Endpoint consumers' roles",
        Type="CommaDelimitedList",
        Default="",
        AllowedPattern=r"^$|^[A-Za-z0-9+=,.@_-]{1,64}$",
        Description="Roles of other functions that post to connections (e.g. the CareConnect backend's), "
        "granted the management API of this stage only. The rollout fills it from endpoint_consumers.",
        ConstraintDescription="IAM role names, comma separated",
    )
    params.add(
        functions,
        "IntegrationTimeoutMillis",
        "Integration timeout (ms)",
        Type="Number",
        Default=29000,
        MinValue=50,
        MaxValue=29000,
        Description="How long API Gateway waits for a handler; 29 s is API Gateway's limit.",
    )
    throttling = "Stage settings"
    params.add(
        throttling,
        "ThrottlingRateLimit",
        "Throttling rate (requests/s)",
        Type="Number",
        Default=100,
        MinValue=1,
        MaxValue=10000,
        Description="Steady-state requests per second for every route. Stated explicitly: "
        "a rate of 0 rejects every request with 429.",
    )
    params.add(
        throttling,
        "ThrottlingBurstLimit",
        "Throttling burst",
        Type="Number",
        Default=500,
        MinValue=1,
        MaxValue=5000,
        Description="Burst of requests allowed above the rate for every route.",
    )
    params.add(
        throttling,
        "LoggingLevel",
        "Execution logging level",
        Type="String",
        Default="INFO",
        AllowedValues=["OFF", "ERROR", "INFO"],
        Description="Execution logging of every route. Access logging is always on; both need "
        "the account's API Gateway CloudWatch role (see CreateApiGatewayAccountRole).",
    )
    params.add(
        throttling,
        "DataTraceEnabled",
        "Log full message bodies",
        Type="String",
        Default="false",
        AllowedValues=["false", "true"],
        Description="Writes every message body to the execution log: patient data. "
        "Keep false outside short debugging sessions.",
    )
    params.add(
        throttling,
        "DetailedMetricsEnabled",
        "Detailed per-route metrics",
        Type="String",
        Default="true",
        AllowedValues=["true", "false"],
        Description="Per-route CloudWatch metrics (ConnectCount, MessageCount, latency, errors).",
    )
    params.add(
        functions,
        "ConnectAuthorizerFunctionArn",
        "$connect authorizer function ARN",
        Type="String",
        Default="",
        AllowedPattern=FUNCTION_ARN_PATTERN,
        Description="Optional, for accounts that require an authorizer on $connect (Control Tower "
        "CT.APIGATEWAY.PR.5): a Lambda REQUEST authorizer given the token query-string parameter. "
        "It costs the app: every connection must carry ?token=<JWT>, and the e-mail verification "
        "dialog, which connects before anyone has a token, cannot connect (README). The function "
        "must let apigateway.amazonaws.com invoke it. Empty (default): none, the app authenticates in-band.",
        ConstraintDescription="empty, or a Lambda function ARN",
    )
    logging = "Logs"
    add_log_parameters(params, logging, "Access log")
    add_websocket_parameters(params)


def _conditions(template: Template) -> None:
    p = template.parameters
    for route in ROUTE_HANDLERS:
        template.add_condition(f"{route.arn_parameter}Given", Not(Equals(Ref(p[route.arn_parameter]), "")))
    template.add_condition("ConnectAuthorizerGiven", Not(Equals(Ref(p["ConnectAuthorizerFunctionArn"]), "")))
    template.add_condition("HandlersRoleNameGiven", Not(Equals(Ref(p["HandlersRoleName"]), "")))
    template.add_condition("ConsumerRolesGiven", Not(Equals(Join("", Ref(p["ManageConnectionsRoleNames"])), "")))
    template.add_condition("DataTraceOn", Equals(Ref(p["DataTraceEnabled"]), "true"))
    template.add_condition("DetailedMetricsOn", Equals(Ref(p["DetailedMetricsEnabled"]), "true"))


def function_arn(template: Template, route: HandlerFunction) -> If:
    """The ARN given as a parameter, else the `live` alias of the function the compute stack names by
    default (an alias: the API invokes the release's version, and its permission is on the alias)."""
    default = alias_arn(route.function_name)
    return If(f"{route.arn_parameter}Given", Ref(template.parameters[route.arn_parameter]), default)


def handlers_role_name(template: Template) -> If:
    p = template.parameters
    return If("HandlersRoleNameGiven", Ref(p["HandlersRoleName"]), Sub(HANDLERS_ROLE_NAME))


def _route(template: Template, api: Api, route: HandlerFunction) -> Route:
    p = template.parameters
    integration = template.add_resource(
        Integration(
            f"{route.logical}Integration",
            ApiId=Ref(api),
            Description=f"{route.route_key} -> {route.display_name}",
            IntegrationType="AWS_PROXY",
            IntegrationMethod="POST",
            IntegrationUri=Join(
                "",
                [
                    Sub("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"),
                    function_arn(template, route),
                    "/invocations",
                ],
            ),
            TimeoutInMillis=Ref(p["IntegrationTimeoutMillis"]),
        )
    )
    template.add_resource(
        Permission(
            f"{route.logical}InvokePermission",
            Action="lambda:InvokeFunction",
            FunctionName=function_arn(template, route),
            Principal="apigateway.amazonaws.com",
            SourceAccount=Ref("AWS::AccountId"),
            SourceArn=Sub(f"{EXECUTE_API_ARN}/${{StageName}}/{route.route_key}"),
        )
    )
    authorized = route.route_key == "$connect"  # WebSocket APIs authorize $connect only
    return template.add_resource(
        Route(
            f"{route.logical}Route",
            ApiId=Ref(api),
            RouteKey=route.route_key,
            AuthorizationType=If("ConnectAuthorizerGiven", "CUSTOM", "NONE") if authorized else "NONE",
            **(
                {"AuthorizerId": If("ConnectAuthorizerGiven", Ref("ConnectAuthorizer"), Ref("AWS::NoValue"))}
                if authorized
                else {}
            ),
            OperationName=f"{route.logical}Route",
            Target=Join("/", ["integrations", Ref(integration)]),
        )
    )


def _connect_authorizer(template: Template, api: Api) -> None:
    """The optional $connect REQUEST authorizer: API Gateway refuses a connection without the
    token parameter (401) before invoking it, then the function allows or denies it."""
    p = template.parameters
    uri = Sub(
        "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Function}/invocations",
        Function=Ref(p["ConnectAuthorizerFunctionArn"]),
    )
    template.add_resource(
        Authorizer(
            "ConnectAuthorizer",
            Condition="ConnectAuthorizerGiven",
            ApiId=Ref(api),
            Name=Sub(f"{Names().stem}-connect-authorizer"),
            AuthorizerType="REQUEST",
            AuthorizerUri=uri,
            IdentitySource=["route.request.querystring.token"],
        )
    )


def _stage(template: Template, api: Api, routes: list[Route]) -> Stage:
    p = template.parameters
    logs = template.add_resource(log_group(template, "AccessLogGroup", Sub(Names().api_log_group), "websocket"))
    return template.add_resource(
        Stage(
            "Stage",
            DependsOn=[route.title for route in routes] + [account_role.READY],
            ApiId=Ref(api),
            StageName=Ref(p["StageName"]),
            Description="CareConnect WebSocket stage (auto-deployed)",
            AutoDeploy=True,
            DefaultRouteSettings=RouteSettings(
                DataTraceEnabled=If("DataTraceOn", True, False),
                DetailedMetricsEnabled=If("DetailedMetricsOn", True, False),
                LoggingLevel=Ref(p["LoggingLevel"]),
                ThrottlingRateLimit=Ref(p["ThrottlingRateLimit"]),
                ThrottlingBurstLimit=Ref(p["ThrottlingBurstLimit"]),
            ),
            AccessLogSettings=AccessLogSettings(DestinationArn=GetAtt(logs, "Arn"), Format=ACCESS_LOG_FORMAT),
            Tags=tag_map("websocket"),
        )
    )


def _manage_connections() -> PolicyDocument:
    """execute-api:ManageConnections on this API's stage only: post, get and delete."""
    resources = [
        Sub(f"{EXECUTE_API_ARN}/${{StageName}}/{method}/@connections/*") for method in ("POST", "GET", "DELETE")
    ]
    return PolicyDocument(
        Version="2012-10-17", Statement=[Statement(Effect=Allow, Action=[ManageConnections], Resource=resources)]
    )


def _management_policy(template: Template) -> PolicyType:
    """The handlers' role, and the endpoint consumers' roles when given, may use this stage's
    management API (and no other API's)."""
    p = template.parameters
    template.add_resource(
        PolicyType(
            "ConsumersManageConnectionsPolicy",
            Condition="ConsumerRolesGiven",
            PolicyName=Sub(Names().policy("manage-connections")),
            Roles=Ref(p["ManageConnectionsRoleNames"]),
            PolicyDocument=_manage_connections(),
        )
    )
    return template.add_resource(
        PolicyType(
            "ManageConnectionsPolicy",
            PolicyName=Sub(Names().policy("manage-connections")),
            Roles=[handlers_role_name(template)],
            PolicyDocument=_manage_connections(),
        )
    )


def _outputs(api: Api, stage: Stage) -> dict[str, tuple[str, object]]:
    return {
        "WebSocketApiId": ("WebSocket API id", Ref(api)),
        "WebSocketStageName": ("Stage name", Ref(stage)),
        "WebSocketManagementEndpoint": (
            "Management API endpoint for the handlers (AWS_WEBSOCKET_API_GATEWAY_ENDPOINT)",
            Sub(MANAGEMENT_ENDPOINT),
        ),
        "WebSocketStageInvokeUrl": ("wss:// URL the Flutter app connects to", Sub(INVOKE_URL)),
        "WebSocketApiExecutionArn": (
            "Execution ARN of the API, for IAM policies",
            Sub(EXECUTE_API_ARN),
        ),
    }


def build() -> Template:
    """The whole websocket template, as plain troposphere data."""
    template, params = new_template(
        "CareConnect WebSocket API: API Gateway WebSocket API, stage, access logs, "
        "Lambda integrations and permissions, and the handlers' management-API grant."
    )
    _parameters(params)
    _conditions(template)
    api = template.add_resource(
        Api(
            "Api",
            Name=Sub(API_NAME),
            Description="CareConnect real-time channel between the Flutter app and the backend",
            ProtocolType="WEBSOCKET",
            RouteSelectionExpression="$request.body.action",
            Tags=tag_map("websocket"),
        )
    )
    _connect_authorizer(template, api)
    routes = [_route(template, api, route) for route in ROUTE_HANDLERS]
    policy = _management_policy(template)
    account_role.add_setting(
        template, params, [policy.title, *(f"{r.logical}InvokePermission" for r in ROUTE_HANDLERS)]
    )
    stage = _stage(template, api, routes)
    websocket_alarms(template, Ref(api), Ref(stage))
    dashboard(template)
    return finish(template, params, _outputs(api, stage))
