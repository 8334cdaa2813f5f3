"""A WebSocket API deployed to the emulator answers on a real socket (emulator/websocket_apis.py):
$connect may refuse, the route selection expression picks the route, AWS_PROXY runs the
deployed zip, its management-API posts reach the client, and a closed connection is gone."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.exceptions import ClientError

from emulator import websocket_url
from tests.emulator.lambda_zips import REGION, client, deploy

CHAT = """
import json, boto3

def handler(event, context):
    ctx = event["requestContext"]
    route = ctx["routeKey"]
    if route == "$connect":
        allowed = (event.get("queryStringParameters") or {}).get("token") == "good"
        return {"statusCode": 200 if allowed else 401}
    if route == "$disconnect":
        boto3.client("s3").put_object(Bucket="disconnects", Key=ctx["connectionId"], Body=ctx["eventType"].encode())
        return {"statusCode": 200}
    if route == "sendmessage":
        # as AWS's sample code builds it; the emulator answers at that host name
        management = boto3.client("apigatewaymanagementapi", endpoint_url=f"https://{ctx['domainName']}/{ctx['stage']}")
        data = json.loads(event["body"])["data"]
        management.post_to_connection(ConnectionId=ctx["connectionId"],
                                      Data=json.dumps({"pushed": data, "to": ctx["connectionId"]}).encode())
        return {"statusCode": 200}
    return {"statusCode": 200, "body": json.dumps({"route": route, "body": event["body"]})}
"""


def chat_api(emulator: str) -> str:
    """Deployed through the API Gateway v2 API, as any tool would; returns the API id."""
    function_arn = deploy(emulator, "chat", {"app.py": CHAT}, Timeout=10)
    apis = client(emulator, "apigatewayv2")
    api_id = apis.create_api(Name="chat", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action")[
        "ApiId"
    ]
    uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    integration = apis.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=uri)
    target = f"integrations/{integration['IntegrationId']}"
    for key in ("$connect", "$disconnect", "sendmessage"):
        apis.create_route(ApiId=api_id, RouteKey=key, Target=target)
    apis.create_route(ApiId=api_id, RouteKey="$default", Target=target, RouteResponseSelectionExpression="$default")
    apis.create_stage(ApiId=api_id, StageName="prod")
    client(emulator, "s3").create_bucket(Bucket="disconnects", CreateBucketConfiguration={"LocationConstraint": REGION})
    return str(api_id)


async def session(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.ws_connect(url + "?token=good") as socket:
        await socket.send_str(json.dumps({"action": "sendmessage", "data": "hello"}))
        pushed = json.loads((await socket.receive(timeout=20)).data)
        await socket.send_str("not json")
        default = json.loads((await socket.receive(timeout=20)).data)
    return {"pushed": pushed, "default": default}


async def refused(url: str) -> int:
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url + "?token=bad"):
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status


def test_a_deployed_websocket_api_answers_on_a_real_socket(emulator: str) -> None:
    api_id = chat_api(emulator)
    url = websocket_url(api_id, "prod")
    assert asyncio.run(refused(url)) == 401
    seen = asyncio.run(session(url))
    connection_id = seen["pushed"]["to"]
    assert seen["pushed"] == {"pushed": "hello", "to": connection_id}
    assert seen["default"] == {"route": "$default", "body": "not json"}
    s3 = client(emulator, "s3")
    deadline = time.monotonic() + 15
    while s3.list_objects_v2(Bucket="disconnects").get("KeyCount") == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert s3.get_object(Bucket="disconnects", Key=connection_id)["Body"].read() == b"DISCONNECT"
    stage_api = boto3.client("apigatewaymanagementapi", region_name=REGION, endpoint_url=f"{emulator}/prod")
    with pytest.raises(ClientError) as gone:
        stage_api.post_to_connection(ConnectionId=connection_id, Data=b"late")
    assert gone.value.response["Error"]["Code"] == "GoneException"
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
