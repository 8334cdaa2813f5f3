"""Whether the API may still invoke its route functions. The invoke permissions belong to the
websocket stack but live in each function's resource policy: when the compute stack or a function
is re-created, they go with the old function while the websocket stack, whose inputs did not
change, still lists them. Only the functions' policies say so (GetPolicy)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from generator.model import ROUTE_HANDLERS

APIGATEWAY = "apigateway.amazonaws.com"


def _grants(statement: dict[str, Any], source_arn: str) -> bool:
    principal = statement.get("Principal", {})
    service = principal.get("Service") if isinstance(principal, dict) else principal
    condition = statement.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn")
    return statement.get("Effect") == "Allow" and service == APIGATEWAY and condition == source_arn


@dataclass(frozen=True)
class Missing:
    """A route function the API's stage may not invoke, and the grant that restores it."""

    function: str  # as the websocket stack names it (the live alias's ARN)
    route_key: str
    source_arn: str

    def restore_command(self) -> str:
        """What restores it by hand: the grant the stack's AWS::Lambda::Permission made."""
        account = self.source_arn.split(":")[4]
        return (
            f"aws lambda add-permission --function-name {self.function} --statement-id "
            f"restored-{self.route_key.strip('$')} --action lambda:InvokeFunction --principal {APIGATEWAY} "
            f"--source-account {account} --source-arn {self.source_arn}"
        )


def missing(
    lambda_client: Any, websocket_parameters: dict[str, str], websocket_outputs: dict[str, str]
) -> list[Missing]:
    """Each route function whose policy does not let the API's stage invoke it. Raises ClientError
    for anything but a function without a policy (AccessDenied too: the caller says what to grant)."""
    execution_arn = websocket_outputs.get("WebSocketApiExecutionArn", "")
    stage = websocket_outputs.get("WebSocketStageName", "")
    if not execution_arn or not stage:
        return []
    found = []
    for route in ROUTE_HANDLERS:
        function = websocket_parameters.get(route.arn_parameter, "")
        if not function or route.route_key is None:
            continue
        try:
            statements = json.loads(lambda_client.get_policy(FunctionName=function)["Policy"]).get("Statement", [])
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            statements = []
        source_arn = f"{execution_arn}/{stage}/{route.route_key}"
        if not any(_grants(s, source_arn) for s in statements):
            found.append(Missing(function, route.route_key, source_arn))
    return found
