"""The facts every template agrees on: the WebSocket routes, their functions and shared names.

Kept in one place so the compute stack names the functions the websocket stack expects, and the
rollout knows which functions carry the management endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.names import Names

ENDPOINT_VARIABLE = "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT"
# Set with the endpoint on the endpoint consumers (the backend): the function its pushes go through.
NOTIFY_FUNCTION_VARIABLE = "CC_WEBSOCKET_NOTIFY_FUNCTION"

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

NAME_PREFIX_PATTERN = r"^[a-z][a-z0-9-]{0,19}$"
APPLICATION_TAG = "CareConnect"


# Every caller invokes this alias of a handler function (generator/versions.py), never $LATEST.
ALIAS = "live"

LAMBDA_RUNTIME = "python3.14"  # the newest Python runtime cfn-lint knows as current


@dataclass(frozen=True)
class HandlerFunction:
    """One handler Lambda function and, for route handlers, the WebSocket route it serves."""

    logical: str  # CloudFormation logical-id stem, e.g. "Connect"
    suffix: str  # function name suffix: ${NamePrefix}-websocket-<suffix>
    module: str  # Python handler module inside handlers/
    description: str
    route_key: str | None = None  # API Gateway's route key, e.g. "$connect"

    @property
    def handler(self) -> str:
        return f"{self.module}.handler"

    @property
    def function_name(self) -> str:
        """Function name as a Fn::Sub string relative to NamePrefix."""
        return Names().function(self.suffix)

    @property
    def display_name(self) -> str:
        """Function name for descriptions (a literal `${...}` there would upset cfn-lint)."""
        return Names("<NamePrefix>").function(self.suffix)

    @property
    def arn_parameter(self) -> str:
        return f"{self.logical}FunctionArn"


HANDLER_FUNCTIONS = (
    HandlerFunction("Connect", "connect", "handlers.connect", "WebSocket $connect: registers the connection", "$connect"),
    HandlerFunction("Disconnect", "disconnect", "handlers.disconnect", "WebSocket $disconnect: deactivates the connection", "$disconnect"),
    HandlerFunction("Default", "default", "handlers.default", "WebSocket $default: CareConnect's message protocol", "$default"),
    HandlerFunction("Cleanup", "cleanup", "handlers.cleanup", "Scheduled: deactivates expired connections, deletes old rows"),
    HandlerFunction("Notify", "notify", "handlers.notify", "Backend push: delivers the backend's notifications to connected apps"),
    HandlerFunction("Migrate", "migrate", "handlers.migrate", "Release step: brings websocket_connections to the handlers' schema"),
)  # fmt: skip
ROUTE_HANDLERS = tuple(f for f in HANDLER_FUNCTIONS if f.route_key is not None)

API_NAME = Names().api
# Every alarm of both stacks is named with this prefix: the bake step and `rollout status` find them by it.
ALARM_PREFIX = Names().alarm_prefix
HANDLERS_ROLE_NAME = Names().handlers_role
MIGRATE_ROLE_NAME = Names().function("migrate")  # its own: it may connect as the table's owner
