"""A Lambda REQUEST authorizer on `$connect`, as API Gateway runs it for a WebSocket API: every
identity source (`route.request.header.X`, `route.request.querystring.X`, `stageVariables.X`)
must be present, else 401 without calling the function; the function gets the REQUEST event
with the `$connect` route's methodArn; its IAM policy must allow `execute-api:Invoke` on that ARN
(a Deny, or no Allow, is 403); an error or a malformed answer is 500. What it returns as
`principalId` and `context` becomes `requestContext.authorizer` of every event on that connection."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

SOURCE = re.compile(r"^(?:route\.request\.(header|querystring)|(stageVariables))\.(.+)$")


@dataclass(frozen=True)
class Decision:
    status: int  # 200: allowed; else the handshake's refusal
    context: dict[str, Any] | None = None  # requestContext.authorizer when allowed


def method_arn(region: str, account: str, api_id: str, stage: str) -> str:
    return f"arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/$connect"


def identity_present(
    sources: list[str], headers: dict[str, str], query: dict[str, str], stage_variables: dict[str, str]
) -> bool:
    """Whether each identity source has a non-empty value (headers case-insensitive)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for source in sources:
        match = SOURCE.match(source.strip())
        if match is None:
            continue  # context.* sources and others are not checked here
        kind, variables, name = match.groups()
        if variables:
            value = stage_variables.get(name)
        elif kind == "header":
            value = lowered.get(name.lower())
        else:
            value = query.get(name)
        if not value:
            return False
    return True


def request_event(connect_event: dict[str, Any], arn: str, stage_variables: dict[str, str]) -> dict[str, Any]:
    """The authorizer's event: the `$connect` request, its methodArn and stage variables."""
    query = connect_event.get("queryStringParameters")
    return {
        "type": "REQUEST",
        "methodArn": arn,
        "headers": connect_event["headers"],
        "multiValueHeaders": connect_event["multiValueHeaders"],
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "stageVariables": stage_variables or None,
        "requestContext": connect_event["requestContext"],
    }


def decide(ok: bool, answer: Any, arn: str) -> Decision:
    """The connection's fate from the authorizer function's answer."""
    if not ok or not isinstance(answer, dict) or not isinstance(answer.get("policyDocument"), dict):
        return Decision(500)
    statements = answer["policyDocument"].get("Statement") or []
    statements = [statements] if isinstance(statements, dict) else statements
    matching = [s.get("Effect") for s in statements if isinstance(s, dict) and _covers(s, arn)]
    if "Deny" in matching or "Allow" not in matching:
        return Decision(403)
    context = answer.get("context")
    context = context if isinstance(context, dict) else {}
    return Decision(200, {**context, "principalId": answer.get("principalId")})


def _covers(statement: dict[str, Any], arn: str) -> bool:
    actions, resources = statement.get("Action") or [], statement.get("Resource") or []
    actions = [actions] if isinstance(actions, str) else actions
    resources = [resources] if isinstance(resources, str) else resources
    return any(fnmatchcase("execute-api:Invoke", str(a)) for a in actions) and any(
        fnmatchcase(arn, str(r)) for r in resources
    )
