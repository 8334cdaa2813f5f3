"""API Gateway's limits and its $connect authorizer, as the emulator applies them to a deployed
WebSocket API (emulator/websocket_limits.py, websocket_authorizer.py): the integration timeout,
the stage's throttling, 128 KB messages, the idle and maximum durations, a Lambda REQUEST
authorizer whose Deny refuses and whose context reaches every event."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from emulator import websocket_limits, websocket_url
from tests.emulator.lambda_zips import REGION, client, deploy

APP = """
import json, time

def handler(event, context):
    ctx = event["requestContext"]
    if ctx["routeKey"] == "$disconnect":
        import boto3  # here only: a quick cold start for the timeout's test
        boto3.client("s3").put_object(Bucket="disconnects", Key=ctx["connectionId"],
                                      Body=json.dumps([event["disconnectStatusCode"], event["disconnectReason"]]))
        return {"statusCode": 200}
    if ctx["routeKey"] == "$connect":
        return {"statusCode": 200}
    body = event["body"]
    if body.startswith("sleep"):
        time.sleep(float(body.split()[1]))
    return {"statusCode": 200, "body": json.dumps({"length": len(body), "authorizer": ctx.get("authorizer")})}
"""

AUTHORIZER = """
def handler(event, context):
    token = event["headers"].get("Auth") or (event.get("queryStringParameters") or {}).get("token")
    if token == "boom":
        raise RuntimeError("the token service is down")
    effect = "Allow" if token == "good" else "Deny"
    return {"principalId": "u-1", "context": {"userId": "u-1", "role": "CAREGIVER"},
            "policyDocument": {"Version": "2012-10-17",
                               "Statement": [{"Action": "execute-api:Invoke", "Effect": effect,
                                              "Resource": event["methodArn"]}]}}
"""


def lambda_uri(function_arn: str) -> str:
    return f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations"


def websocket_api(emulator: str, *, timeout_ms: int | None = None, authorizer: bool = False,
                  **stage: Any) -> str:  # fmt: skip
    """An API whose every route runs APP (echo, sleep, record disconnects); returns its id.
    `timeout_ms` is $default's integration's (the others keep the default)."""
    function_arn = deploy(emulator, "app", {"app.py": APP}, Timeout=10)
    apis = client(emulator, "apigatewayv2")
    api_id = apis.create_api(Name="limits", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action")[
        "ApiId"
    ]

    def integration(**extra: Any) -> str:
        made = apis.create_integration(
            ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=lambda_uri(function_arn), **extra
        )
        return "integrations/" + made["IntegrationId"]

    target = integration()
    connect: dict[str, Any] = {}
    if authorizer:
        authorizer_arn = deploy(emulator, "authorizer", {"app.py": AUTHORIZER})
        authorizer_id = apis.create_authorizer(
            ApiId=api_id, AuthorizerType="REQUEST", Name="token", AuthorizerUri=lambda_uri(authorizer_arn),
            IdentitySource=["route.request.header.Auth"],
        )["AuthorizerId"]  # fmt: skip
        connect = {"AuthorizationType": "CUSTOM", "AuthorizerId": authorizer_id}
    apis.create_route(ApiId=api_id, RouteKey="$connect", Target=target, **connect)
    apis.create_route(ApiId=api_id, RouteKey="$disconnect", Target=target)
    default = integration(TimeoutInMillis=timeout_ms) if timeout_ms else target
    apis.create_route(ApiId=api_id, RouteKey="$default", Target=default, RouteResponseSelectionExpression="$default")
    apis.create_stage(ApiId=api_id, StageName="prod", **stage)
    client(emulator, "s3").create_bucket(Bucket="disconnects", CreateBucketConfiguration={"LocationConstraint": REGION})
    return str(api_id)


async def handshake_status(url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url, headers=headers):
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status


async def replies(url: str, *frames: str, headers: dict[str, str] | None = None) -> list[Any]:
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as socket:
        answers = []
        for frame in frames:
            await socket.send_str(frame)
            answers.append(json.loads((await socket.receive(timeout=20)).data))
        return answers


def disconnect_of(emulator: str) -> list[Any]:
    """The one $disconnect the function recorded: [status code, reason]."""
    s3 = client(emulator, "s3")
    for _ in range(150):
        listed = s3.list_objects_v2(Bucket="disconnects").get("Contents") or []
        if listed:
            return list(json.loads(s3.get_object(Bucket="disconnects", Key=listed[0]["Key"])["Body"].read()))
        asyncio.run(asyncio.sleep(0.1))
    raise AssertionError("no $disconnect was recorded")


def test_an_integration_slower_than_its_timeout_answers_endpoint_request_timed_out(emulator: str) -> None:
    url = websocket_url(websocket_api(emulator, timeout_ms=2000), "prod")
    slow, quick = asyncio.run(replies(url, "sleep 5", "sleep 0"))
    assert slow["message"] == "Endpoint request timed out" and slow["connectionId"]
    assert quick["length"] == len("sleep 0")  # the connection stays open


def test_the_stages_throttling_refuses_connects_with_429_and_throttles_each_route(emulator: str) -> None:
    api_id = websocket_api(
        emulator, RouteSettings={"$default": {"ThrottlingRateLimit": 0.01, "ThrottlingBurstLimit": 1}}
    )
    client(emulator, "apigatewayv2").create_stage(
        ApiId=api_id, StageName="closed", DefaultRouteSettings={"ThrottlingRateLimit": 0, "ThrottlingBurstLimit": 0}
    )
    assert asyncio.run(handshake_status(websocket_url(api_id, "closed"))) == 429  # limits left at 0: all throttled
    first, second = asyncio.run(replies(websocket_url(api_id, "prod"), "one", "two"))
    assert first["length"] == 3
    assert second["message"] == "Too Many Requests"  # $default's own bucket is empty; $connect's is not


def test_a_message_over_128_kb_closes_the_connection_with_1009(emulator: str) -> None:
    url = websocket_url(websocket_api(emulator), "prod")
    limit = 128 * 1024

    async def send_too_much() -> tuple[Any, int | None]:
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as socket:
            await socket.send_str("x" * limit)
            fits = json.loads((await socket.receive(timeout=20)).data)
            await socket.send_str("x" * (limit + 1))
            closing = await socket.receive(timeout=20)
            return fits, closing.data if closing.type == aiohttp.WSMsgType.CLOSE else None

    fits, close_code = asyncio.run(send_too_much())
    assert fits["length"] == limit
    assert close_code == 1009
    assert disconnect_of(emulator)[0] == 1009


def test_an_idle_connection_is_closed_with_1001_and_disconnect_runs(
    emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket_limits.LIMITS, "idle_seconds", 1.0)
    url = websocket_url(websocket_api(emulator), "prod")

    async def wait_idle() -> Any:
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as socket:
            return (await socket.receive(timeout=20)).data

    assert asyncio.run(wait_idle()) == 1001
    assert disconnect_of(emulator) == [1001, "Going away"]


def test_a_busy_connection_is_still_closed_at_its_maximum_duration(
    emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket_limits.LIMITS, "max_seconds", 2.0)
    url = websocket_url(websocket_api(emulator), "prod")

    async def stay_busy() -> tuple[int, Any]:
        answered = 0
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as socket:
            while True:
                await socket.send_str("ping")
                message = await socket.receive(timeout=20)
                if message.type != aiohttp.WSMsgType.TEXT:
                    return answered, message.data
                answered += 1
                await asyncio.sleep(0.2)

    answered, code = asyncio.run(stay_busy())
    assert answered >= 2 and code == 1001


def test_a_connect_authorizer_refuses_without_identity_or_on_deny_and_its_context_reaches_every_event(
    emulator: str,
) -> None:
    url = websocket_url(websocket_api(emulator, authorizer=True), "prod")
    assert asyncio.run(handshake_status(url)) == 401  # no Auth header: the authorizer is not even called
    assert asyncio.run(handshake_status(url, {"Auth": "stolen"})) == 403
    assert asyncio.run(handshake_status(url, {"Auth": "boom"})) == 500
    (answer,) = asyncio.run(replies(url, "hello", headers={"Auth": "good"}))
    assert answer["authorizer"] == {"userId": "u-1", "role": "CAREGIVER", "principalId": "u-1"}


def test_a_templates_authorizer_and_route_settings_apply_when_cloudformation_deploys_it(emulator: str) -> None:
    app, authorizer = deploy(emulator, "app", {"app.py": APP}), deploy(emulator, "authorizer", {"app.py": AUTHORIZER})
    api = {"Ref": "Api"}
    template = {"Resources": {
        "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {
            "Name": "from-a-template", "ProtocolType": "WEBSOCKET", "RouteSelectionExpression": "$request.body.action"}},
        "Token": {"Type": "AWS::ApiGatewayV2::Authorizer", "Properties": {
            "ApiId": api, "Name": "token", "AuthorizerType": "REQUEST", "AuthorizerUri": lambda_uri(authorizer),
            "IdentitySource": ["route.request.querystring.token"]}},
        "Integration": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
            "ApiId": api, "IntegrationType": "AWS_PROXY", "IntegrationUri": lambda_uri(app)}},
        "Connect": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
            "ApiId": api, "RouteKey": "$connect", "AuthorizationType": "CUSTOM", "AuthorizerId": {"Ref": "Token"},
            "Target": {"Fn::Sub": "integrations/${Integration}"}}},
        "Default": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
            "ApiId": api, "RouteKey": "$default", "Target": {"Fn::Sub": "integrations/${Integration}"},
            "RouteResponseSelectionExpression": "$default"}},
        "Stage": {"Type": "AWS::ApiGatewayV2::Stage", "DependsOn": ["Connect", "Default"], "Properties": {
            "ApiId": api, "StageName": "prod",
            "RouteSettings": {"$default": {"ThrottlingRateLimit": 0.01, "ThrottlingBurstLimit": 1}}}},
    }, "Outputs": {"ApiId": {"Value": api}}}  # fmt: skip
    cloudformation = client(emulator, "cloudformation")
    cloudformation.create_stack(StackName="from-a-template", TemplateBody=json.dumps(template))
    (stack,) = cloudformation.describe_stacks(StackName="from-a-template")["Stacks"]
    url = websocket_url(stack["Outputs"][0]["OutputValue"], "prod")
    assert asyncio.run(handshake_status(url)) == 401
    assert asyncio.run(handshake_status(url + "?token=stolen")) == 403
    first, second = asyncio.run(replies(url + "?token=good", "one", "two"))
    assert first["authorizer"]["userId"] == "u-1"
    assert second["message"] == "Too Many Requests"
