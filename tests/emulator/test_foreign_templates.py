"""Foreign templates on the emulator: AWS's SAM sample simple-websockets-chat-app (its template
unchanged, its Node handlers ported to Python in tests/fixtures), transformed by
aws-sam-translator, deployed through CloudFormation and driven by WebSocket clients: connect,
send, broadcast to every connection in its DynamoDB table, disconnect. Its sendmessage function
builds the management endpoint from the event and reaches the emulator there."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cfnlint.decode import cfn_yaml
from samtranslator.translator.transform import transform

from emulator import websocket_url
from tests.emulator.lambda_zips import REGION, client

CHAT_APP = Path(__file__).resolve().parent.parent / "fixtures" / "simple_websockets_chat_app"
CODE_BUCKET = "sam-artifacts"


def packaged(emulator: str, folder: Path) -> dict[str, Any]:
    """What `sam package` does with the template: each CodeUri folder zipped into S3; the port is
    Python, so the runtime is too. Returns the template, transformed by SAM."""
    template = cfn_yaml.loads((folder / "template.yaml").read_text())
    s3 = client(emulator, "s3")
    s3.create_bucket(Bucket=CODE_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.write(folder / properties["CodeUri"] / "app.py", "app.py")
        s3.put_object(Bucket=CODE_BUCKET, Key=f"{name}.zip", Body=buffer.getvalue())
        properties["CodeUri"] = f"s3://{CODE_BUCKET}/{name}.zip"
        properties["Runtime"] = "python3.14"
    return dict(transform(json.loads(json.dumps(template)), {}, None))


def deployed(emulator: str, template: dict[str, Any], stack: str) -> dict[str, str]:
    cloudformation = client(emulator, "cloudformation")
    cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"])
    for _ in range(600):
        (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
        if not described["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    assert described["StackStatus"] == "CREATE_COMPLETE", described["StackStatus"]
    return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}


def table_keys(emulator: str) -> set[str]:
    items = client(emulator, "dynamodb").scan(TableName="simplechat_connections")["Items"]
    return {item["connectionId"]["S"] for item in items}


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 20
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_the_sam_simple_websockets_chat_app_connects_broadcasts_and_disconnects(
    emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)  # SAM's transform fills ${AWS::Region} ARNs from it
    template = packaged(emulator, CHAT_APP)
    assert "AWS::Serverless::Function" not in {r["Type"] for r in template["Resources"].values()}
    outputs = deployed(emulator, template, "simple-websockets-chat-app")
    api_id, stage = outputs["WebSocketURI"].removeprefix("wss://").split(".", 1)[0], "Prod"
    assert outputs["WebSocketURI"] == f"wss://{api_id}.execute-api.{REGION}.amazonaws.com/{stage}"
    url = websocket_url(api_id, stage)

    async def chat() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http:
            alice = await http.ws_connect(url)
            bob = await http.ws_connect(url)
            both = await asyncio.to_thread(table_keys, emulator)
            await alice.send_str(json.dumps({"action": "sendmessage", "data": "hello from alice"}))
            heard = [(await alice.receive(timeout=20)).data, (await bob.receive(timeout=20)).data]
            await alice.close()
            await asyncio.to_thread(wait_for, lambda: len(table_keys(emulator)) == 1)
            left = await asyncio.to_thread(table_keys, emulator)
            await bob.send_str(json.dumps({"action": "sendmessage", "data": "anyone?"}))
            alone = (await bob.receive(timeout=20)).data
            await bob.close()
        return {"both": both, "heard": heard, "left": left, "alone": alone}

    seen = asyncio.run(chat())
    assert len(seen["both"]) == 2  # $connect stored each connection
    assert seen["heard"] == ["hello from alice", "hello from alice"]  # broadcast to every connection
    assert len(seen["left"]) == 1 and seen["left"] < seen["both"]  # $disconnect removed alice's
    assert seen["alone"] == "anyone?"
    wait_for(lambda: not table_keys(emulator))
    assert table_keys(emulator) == set()
