"""The rollout's stages as data, owned by the generator: which stacks, in which order, how one
stack's outputs feed the next one's parameters, and the CloudFormation states that decide
what to do with a stack. The plan (`rollout/plan.py`) and the state machine's skeleton
(`generator/statemachine.py`) both read this module, so they cannot drift.

1. compute   -> the handler functions (its ManagementEndpoint comes from the websocket stack
                once that exists, so a later compute deploy never erases the endpoint);
2. websocket -> the API, fed the compute stack's function ARNs and role name;
3. endpoint  -> AWS_WEBSOCKET_API_GATEWAY_ENDPOINT merged into every handler function, and
                carried into the compute stack's ManagementEndpoint parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.model import ENDPOINT_VARIABLE, HANDLER_FUNCTIONS, ROUTE_HANDLERS

# The account's API Gateway logging role (generator/account_role.py): the compute stack creates it
# and outputs its ARN, which the websocket stack sets for the account.
ACCOUNT_ROLE_CREATE_PARAMETER = "CreateApiGatewayAccountRole"  # compute; decided per account by the rollout
ACCOUNT_ROLE_ARN_PARAMETER = "ApiGatewayCloudWatchRoleArn"  # websocket ("": leave the account as it is)
ACCOUNT_ROLE_ARN_OUTPUT = ACCOUNT_ROLE_ARN_PARAMETER  # compute ("" when it creates none)
ACCOUNT_ROLE_LOGICAL_ID = "ApiGatewayCloudWatchRole"

# Stage -> template stem, in deploy order.
STACK_TEMPLATES = {"compute": "compute", "websocket": "websocket"}

Source = tuple[str, str]  # (stage, output key)

# Stage -> {parameter: where its value comes from}.
STACK_INPUTS: dict[str, dict[str, Source]] = {
    "compute": {"ManagementEndpoint": ("websocket", "WebSocketManagementEndpoint")},
    "websocket": {
        **{f.arn_parameter: ("compute", f"{f.logical}AliasArn") for f in ROUTE_HANDLERS},  # the live aliases
        "HandlersRoleName": ("compute", "HandlersRoleName"),
        "AlarmTopicArn": ("compute", "AlarmTopicArn"),
        ACCOUNT_ROLE_ARN_PARAMETER: ("compute", ACCOUNT_ROLE_ARN_OUTPUT),
    },
}
ARTIFACT_PARAMETERS = {"compute": ("CodeS3Bucket", "CodeS3Key")}
# What publishes a new version of every function (generator/versions.py): the zip's CodeSha256 and a
# digest of the stack's other parameters, which the deploy step computes once its inputs are filled.
VERSION_PARAMETERS = {"compute": ("CodeSha256", "ConfigurationDigest")}
# A canary or linear release (rollout/release.py): the versions the live aliases keep serving, and the
# new versions' weight; neither feeds the digest (a shift publishes nothing).
SHIFT_PARAMETERS = {"compute": ("ShiftFromVersions", "NewVersionWeight")}
# The functions whose traffic shifts by weight (the migrate function is the release's own step: always new).
SHIFTED_FUNCTIONS = tuple(f for f in HANDLER_FUNCTIONS if f.logical != "Migrate")
# The roles of the environment's endpoint consumers (functions outside these stacks that get the
# endpoint too), granted the management API of this stage; the rollout looks them up.
CONSUMER_ROLES_PARAMETER = ("websocket", "ManageConnectionsRoleNames")
MAX_CONSUMERS = 10  # endpoint consumers one rollout serves (each is named in the roles' policies)
ROLLOUT_SET_PARAMETERS = {
    stage: set(STACK_INPUTS[stage])
    | set(ARTIFACT_PARAMETERS.get(stage, ()))
    | set(VERSION_PARAMETERS.get(stage, ()))
    | set(SHIFT_PARAMETERS.get(stage, ()))
    | ({CONSUMER_ROLES_PARAMETER[1]} if stage == CONSUMER_ROLES_PARAMETER[0] else set())
    for stage in STACK_TEMPLATES
}


ACCOUNT_ROLE_PARAMETER = ("compute", ACCOUNT_ROLE_CREATE_PARAMETER)  # decided per account by the rollout


@dataclass(frozen=True)
class EndpointUpdate:
    variable: str
    value_from: Source
    functions_from: tuple[Source, ...]
    carried_by: tuple[str, str]  # (stage, parameter) that keeps the value in CloudFormation
    notify_from: Source  # the notify function, named to the endpoint consumers


ENDPOINT_UPDATE = EndpointUpdate(
    variable=ENDPOINT_VARIABLE,
    value_from=("websocket", "WebSocketManagementEndpoint"),
    functions_from=tuple(("compute", f"{f.logical}FunctionName") for f in HANDLER_FUNCTIONS),
    carried_by=("compute", "ManagementEndpoint"),
    notify_from=("compute", "NotifyAliasArn"),  # the backend invokes the live alias
)

# The rollout's steps, in order: every plan is a sub-list of these, and the state machine has a
# state for each (a step a plan leaves out is skipped by the runner).
# compute -> migrate (the table to the version the new handlers need, by the compute stack's
# migrate function) -> settle (a logging role the compute stack just created is given time to
# propagate in IAM before the websocket stack sets the account to it) -> websocket -> endpoint (the
# variable on every function) -> carry (the endpoint into the compute stack's parameter, so later
# compute deploys keep it) -> bake (watch the alarms).
# -> shift (a canary or linear release: the live aliases' weights moved, alarms read between moves)
STEP_ORDER = ("compute", "migrate", "settle", "websocket", "endpoint", "carry", "shift", "bake", "prune")

# The name ending of each traffic function's alarm on its newest version (generator/monitoring.py).
VERSION_ALARM_SUFFIX = "-version-errors"

# The alarms every change set names as CloudFormation rollback triggers (RollbackConfiguration takes
# at most 5): the errors on the traffic path. The bake and the shift read every alarm of the stacks.
ROLLBACK_TRIGGER_ALARMS = ("api-integration-errors", "api-execution-errors", "connect-errors", "default-errors",
                           "notify-errors")  # fmt: skip

# CloudFormation stack states, as both engines act on them.
UPDATABLE = (
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
)
SUCCESS = ("CREATE_COMPLETE", "UPDATE_COMPLETE")
# A change set without changes FAILS with one of these reasons (AWS's spelling).
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
