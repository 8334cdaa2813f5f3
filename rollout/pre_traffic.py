"""The pre-traffic hook: one WebSocket session driven against a new version before any client
traffic reaches it.

`drive_session` invokes the version directly (`Invoke` with `Qualifier`) with the events API
Gateway sends a WebSocket API's Lambda proxy integrations (`requestContext` with `routeKey`,
`eventType`, `connectionId`, `domainName`, `stage`, `apiId`, `requestTimeEpoch`,
`identity.sourceIp`...): `$connect` with no query string, the frame the app's live client (the
email verification dialog) sends after connecting, `subscribe-email-verification {email}`, then
`$disconnect`. The connection id starts with `pre-traffic-` (handlers/events.py): an id API
Gateway never gives, which `$disconnect` deletes rather than keeps inactive, so the session
leaves no row behind. `$disconnect` is sent whenever `$connect` was, whatever came after.

What the answers must be: `statusCode` 200 from each route and no `FunctionError`. `$default`
answers 200 whatever became of its reply: it posts `connection-established` and the
subscription's confirmation through `@connections`, where the hook's connection does not exist;
API Gateway answers 410 GoneException, which the handler treats as a client gone (the row is
deactivated, nothing raised), so a healthy version still answers 200. A 5xx (database
unavailable, function misconfigured, internal error) or an unhandled error fails the hook with
`PreTrafficFailed` naming the route, the version and the answer (credentials in URLs and
token-like strings are masked; no token is ever sent: the dialog authenticates nothing).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.events import PRE_TRAFFIC_PREFIX
from rollout.steps import Call

CONNECT, DEFAULT, DISCONNECT = "Connect", "Default", "Disconnect"  # generator/model.py ROUTE_HANDLERS
ROUTES = {CONNECT: ("$connect", "CONNECT"), DEFAULT: ("$default", "MESSAGE"), DISCONNECT: ("$disconnect", "DISCONNECT")}
# An address no one holds (RFC 2606's .invalid): the subscription reaches no user.
EMAIL = "pre-traffic@careconnect.invalid"
USER_AGENT = "careconnect-rollout pre-traffic hook"
SOURCE_IP = "127.0.0.1"
MAX_ANSWER = 300


class PreTrafficFailed(RuntimeError):
    """The version answered a route as no healthy version does; the text names both and the answer."""


@dataclass(frozen=True)
class RouteAnswer:
    route: str
    function_name: str
    qualifier: str
    executed_version: str
    status_code: int | None
    seconds: float


@dataclass
class SessionReport:
    connection_id: str
    qualifier: str
    answers: list[RouteAnswer] = field(default_factory=list)

    def describe(self) -> str:
        routes = ", ".join(f"{a.route} {a.status_code} ({a.seconds:.2f} s)" for a in self.answers)
        return f"pre-traffic session {self.connection_id} on version {self.qualifier}: {routes}"


def calls(function_arns: Sequence[str], qualifier: str = "*") -> list[Call]:
    """What the hook calls: `lambda:InvokeFunction` on each function's qualified ARN (a version's
    ARN is the function's with `:<version>`; `*` for any version the rollout publishes)."""
    return [Call("lambda:InvokeFunction", f"{arn}:{qualifier}") for arn in function_arns]


def dialog_frame(email: str = EMAIL) -> str:
    """What the email verification dialog sends once connected (email_verification_dialog.dart)."""
    return json.dumps({"type": "subscribe-email-verification", "email": email})


def new_connection_id() -> str:
    return f"{PRE_TRAFFIC_PREFIX}{os.urandom(6).hex()}"


def drive_session(
    lam: Any,
    function_names: Mapping[str, str],
    qualifier: str,
    *,
    domain_name: str,
    stage: str,
    connection_id: str | None = None,
    email: str = EMAIL,
) -> SessionReport:
    """One session against version `qualifier` of the route functions (`function_names`: logical
    name, Connect/Default/Disconnect, to function name). `domain_name` and `stage` are the API's
    (`{apiId}.execute-api.{region}.amazonaws.com`): the handlers post their replies to
    `https://{domainName}/{stage}` unless the function names its endpoint.

    Each answer's ExecutedVersion must be `qualifier` (Lambda's word on what ran)."""
    missing = [name for name in ROUTES if not function_names.get(name)]
    if missing:
        raise ValueError(f"no function named for {', '.join(missing)}")
    connection_id = connection_id or new_connection_id()
    if not connection_id.startswith(PRE_TRAFFIC_PREFIX):
        raise ValueError(f"the hook's connection id must start with {PRE_TRAFFIC_PREFIX!r}")
    session = _Session(
        lam,
        function_names,
        str(qualifier),
        domain_name,
        stage,
        connection_id,
    )
    report = SessionReport(connection_id, str(qualifier))
    message = dialog_frame(email)
    try:
        report.answers.append(session.invoke(CONNECT))
        report.answers.append(session.invoke(DEFAULT, body=message))
    except Exception:
        with contextlib.suppress(Exception):  # the first failure is the one to report
            session.invoke(DISCONNECT)  # the row a $connect may have stored goes, whatever came after
        raise
    report.answers.append(session.invoke(DISCONNECT))
    return report


NAME = "websocket-session"  # as the settings name it: release: {pre_traffic: websocket-session}
ENDPOINT_VARIABLE = "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT"


def websocket_session(lam: Any, function_names: Mapping[str, str], qualifier: str) -> None:
    """The shift step's hook (rollout/shift_step.py HOOKS): the API's domain and stage are read
    from the endpoint the version itself holds (`https://{domain}/{stage}`), so its replies go
    where that version would send them."""
    config = lam.get_function_configuration(FunctionName=function_names[DEFAULT], Qualifier=qualifier)
    endpoint = (config.get("Environment") or {}).get("Variables", {}).get(ENDPOINT_VARIABLE, "")
    domain, _, stage = endpoint.removeprefix("https://").partition("/")
    if not domain or not stage:
        raise PreTrafficFailed(
            f"{function_names[DEFAULT]} version {qualifier} holds no {ENDPOINT_VARIABLE} "
            f"(https://<domain>/<stage>): {endpoint or 'unset'}"
        )
    drive_session(lam, function_names, qualifier, domain_name=domain, stage=stage.strip("/"))


def session_event(
    logical: str,
    connection_id: str,
    request_id: str,
    *,
    domain_name: str,
    stage: str,
    connected_at: int,
    body: str | None = None,
) -> dict[str, Any]:
    """The event API Gateway sends the route's function (Lambda proxy integration of a WebSocket
    API; the shape of tests/handlers/events.py, checked against AWS's documentation)."""
    route_key, event_type = ROUTES[logical]
    now = time.time()
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": connected_at,
        "requestTimeEpoch": int(now * 1000),
        "identity": {"sourceIp": SOURCE_IP, "userAgent": USER_AGENT},
        "requestId": request_id,
        "domainName": domain_name,
        "connectionId": connection_id,
        "apiId": domain_name.split(".", 1)[0],
    }
    headers = {"Host": domain_name, "User-Agent": USER_AGENT}
    if logical == CONNECT:
        headers |= {"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "cHJlLXRyYWZmaWMtaG9vaw=="}
        return {
            "headers": headers,
            "multiValueHeaders": {name: [value] for name, value in headers.items()},
            "requestContext": context,
            "isBase64Encoded": False,
        }
    if logical == DEFAULT:
        context["messageId"] = f"{request_id}-message"
        return {"requestContext": context, "body": body, "isBase64Encoded": False}
    context |= {"disconnectStatusCode": 1000, "disconnectReason": "pre-traffic session ended"}
    headers = {"Host": domain_name}
    return {
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }


class _Session:
    def __init__(
        self,
        lam: Any,
        names: Mapping[str, str],
        qualifier: str,
        domain_name: str,
        stage: str,
        connection_id: str,
    ) -> None:
        self.lam, self.names, self.qualifier = lam, names, qualifier
        self.domain_name, self.stage, self.connection_id = domain_name, stage, connection_id
        self.connected_at = int(time.time() * 1000)
        self.count = 0

    def event(self, logical: str, body: str | None) -> dict[str, Any]:
        self.count += 1
        return session_event(
            logical,
            self.connection_id,
            f"{self.connection_id}-{self.count}",
            domain_name=self.domain_name,
            stage=self.stage,
            connected_at=self.connected_at,
            body=body,
        )

    def invoke(self, logical: str, body: str | None = None) -> RouteAnswer:
        route = ROUTES[logical][0]
        name = self.names[logical]
        where = f"{route} on {name} version {self.qualifier}"
        started = time.monotonic()
        try:
            response = self.lam.invoke(
                FunctionName=name,
                Qualifier=self.qualifier,
                InvocationType="RequestResponse",
                Payload=json.dumps(self.event(logical, body)).encode(),
            )
            raw = response["Payload"].read()
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            text = error.response.get("Error", {}).get("Message", "")
            raise PreTrafficFailed(f"{where}: Invoke failed: {code} {_safe(text)}".rstrip()) from None
        except BotoCoreError as error:
            raise PreTrafficFailed(f"{where}: Invoke failed: {_safe(str(error))}") from None
        seconds = time.monotonic() - started
        executed = str(response.get("ExecutedVersion", ""))
        if executed != self.qualifier:
            raise PreTrafficFailed(f"{where}: Lambda ran version {executed or '(not said)'}")
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = raw.decode(errors="replace")
        if response.get("FunctionError"):
            raise PreTrafficFailed(f"{where}: {response['FunctionError']} error: {_describe_error(answer)}")
        status = answer.get("statusCode") if isinstance(answer, dict) else None
        if status != 200:
            raise PreTrafficFailed(f"{where}: answered {_describe(answer)}, expected statusCode 200")
        return RouteAnswer(route, name, self.qualifier, executed or self.qualifier, status, seconds)


_URL_CREDENTIALS = re.compile(r"(\w+://[^:/@\s]+):[^@\s]+@")
# A JWT, or a long run of base64 (a key, a secret); hyphenated names (functions, stacks) are not.
_TOKENS = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*|(?<![\w-])[A-Za-z0-9+/]{40,}={0,2}")


def _safe(text: str) -> str:
    """Credentials in URLs and token-like strings masked, and kept short."""
    text = _TOKENS.sub("****", _URL_CREDENTIALS.sub(r"\1:****@", text))
    return text if len(text) <= MAX_ANSWER else text[:MAX_ANSWER] + "..."


def _describe(answer: Any) -> str:
    if isinstance(answer, dict) and "statusCode" in answer:
        return f"statusCode {answer['statusCode']} {_safe(str(answer.get('body', '')))!r}"
    return _safe(json.dumps(answer) if not isinstance(answer, str) else answer)


def _describe_error(answer: Any) -> str:
    if isinstance(answer, dict):
        return _safe(f"{answer.get('errorType', '')}: {answer.get('errorMessage', '')}")
    return _safe(str(answer))
