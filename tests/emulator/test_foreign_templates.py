"""Foreign templates on the emulator, deployed through CloudFormation and driven by WebSocket
clients (connect, send, broadcast to every connection in a DynamoDB table, disconnect): AWS's SAM
sample simple-websockets-chat-app (its template unchanged, its Node handlers ported to Python in
tests/fixtures), transformed by aws-sam-translator; and a chat API written with AWS CDK
(aws-cdk-lib's WebSocketApi, tests/fixtures/cdk_websocket_chat), as pinned CDK synthesizes it.
Their functions build the management endpoint from the event and reach the emulator there."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
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

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CHAT_APP, CDK_APP = FIXTURES / "simple_websockets_chat_app", FIXTURES / "cdk_websocket_chat"
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


def table_keys(emulator: str, table: str) -> set[str]:
    items = client(emulator, "dynamodb").scan(TableName=table)["Items"]
    return {item["connectionId"]["S"] for item in items}


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 20
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def chat(url: str, rows: Any) -> dict[str, Any]:
    """Two clients connect, one broadcasts, one leaves, the other speaks alone and leaves; what the
    clients heard and what the connections table (`rows()`) held on the way."""

    async def run() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http:
            alice = await http.ws_connect(url)
            bob = await http.ws_connect(url)
            both = await asyncio.to_thread(rows)
            await alice.send_str(json.dumps({"action": "sendmessage", "data": "hello from alice"}))
            heard = [(await alice.receive(timeout=20)).data, (await bob.receive(timeout=20)).data]
            await alice.close()
            await asyncio.to_thread(wait_for, lambda: len(rows()) == 1)
            left = await asyncio.to_thread(rows)
            await bob.send_str(json.dumps({"action": "sendmessage", "data": "anyone?"}))
            alone = (await bob.receive(timeout=20)).data
            await bob.close()
        wait_for(lambda: not rows())
        return {"both": both, "heard": heard, "left": left, "alone": alone, "after": rows()}

    return asyncio.run(run())


def assert_chatted(seen: dict[str, Any]) -> None:
    assert len(seen["both"]) == 2  # $connect stored each connection
    assert seen["heard"] == ["hello from alice", "hello from alice"]  # broadcast to every connection
    assert len(seen["left"]) == 1 and seen["left"] < seen["both"]  # $disconnect removed alice's
    assert seen["alone"] == "anyone?"
    assert seen["after"] == set()


def test_the_sam_simple_websockets_chat_app_connects_broadcasts_and_disconnects(
    emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)  # SAM's transform fills ${AWS::Region} ARNs from it
    template = packaged(emulator, CHAT_APP)
    assert "AWS::Serverless::Function" not in {r["Type"] for r in template["Resources"].values()}
    outputs = deployed(emulator, template, "simple-websockets-chat-app")
    api_id, stage = outputs["WebSocketURI"].removeprefix("wss://").split(".", 1)[0], "Prod"
    assert outputs["WebSocketURI"] == f"wss://{api_id}.execute-api.{REGION}.amazonaws.com/{stage}"
    assert_chatted(chat(websocket_url(api_id, stage), lambda: table_keys(emulator, "simplechat_connections")))


def test_a_cdk_synthesized_websocket_api_connects_broadcasts_and_disconnects(emulator: str) -> None:
    template = json.loads((CDK_APP / "CdkChat.template.json").read_text())
    # what `cdk bootstrap` leaves in an account: the template's BootstrapVersion parameter reads it
    client(emulator, "ssm").put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="30", Type="String")
    outputs = deployed(emulator, template, "CdkChat")
    resources = client(emulator, "cloudformation").describe_stack_resources(StackName="CdkChat")["StackResources"]
    (table,) = [r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::DynamoDB::Table"]
    assert_chatted(chat(websocket_url(outputs["ApiId"], outputs["StageName"]), lambda: table_keys(emulator, table)))


@pytest.mark.slow
def test_the_cdk_template_is_what_the_pinned_cdk_synthesizes(tmp_path: Path) -> None:
    """The committed CdkChat.template.json is aws-cdk-lib's own output, offline once installed."""
    for name in ("package.json", "package-lock.json", "app.mjs", "chat.py"):
        shutil.copy(CDK_APP / name, tmp_path / name)
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--silent"], cwd=tmp_path, check=True)
    subprocess.run(["node", "app.mjs", "out"], cwd=tmp_path, check=True, capture_output=True)
    synthesized = json.loads((tmp_path / "out" / "CdkChat.template.json").read_text())
    assert synthesized == json.loads((CDK_APP / "CdkChat.template.json").read_text())
