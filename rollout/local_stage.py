"""`python -m handlers.local --emulated`: the project deployed to the emulator by the rehearsal's
rollout, on the developer's PostgreSQL and with the backend's JWT secret, and served at the app's
local paths: each path (`/ws/careconnect`, `/ws/calls`, `/ws/calls-ws`, `/ws/notifications`, `/`)
relays to the deployed stage with the `service` query parameter the app passes on API Gateway,
so every frame goes through API Gateway's emulation into the deployed zip; `POST /notify`
invokes the deployed notify function, as the backend does."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import WSMsgType, web

from handlers.local import PATHS, SERVICES
from rollout.aws import Aws

HOP_BY_HOP = {
    "host",
    "upgrade",
    "connection",
    "content-length",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
}


class Front:
    """The app's paths in front of one deployed stage."""

    def __init__(self, stage_url: str, aws: Aws, notify_function: str) -> None:
        self.stage_url, self.aws, self.notify_function = stage_url, aws, notify_function

    def app(self) -> web.Application:
        app = web.Application()
        for path in PATHS:
            app.router.add_get(path, self.relay)
        app.router.add_post("/notify", self.notify)
        return app

    async def relay(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        if request.path in SERVICES:
            query.setdefault("service", SERVICES[request.path])
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        url = self.stage_url + ("?" + urlencode(query) if query else "")
        async with aiohttp.ClientSession() as http:
            try:
                upstream = await http.ws_connect(url, headers=headers, max_msg_size=0, autoping=True)
            except aiohttp.WSServerHandshakeError as refused:  # $connect refused: the same status
                return web.Response(status=refused.status)
            client = web.WebSocketResponse(max_msg_size=0)
            await client.prepare(request)
            await asyncio.gather(_pump(client, upstream), _pump(upstream, client))
        return client

    async def notify(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        answer = await asyncio.to_thread(self._invoke, body)
        return web.json_response(answer, status=400 if "error" in answer else 200)

    def _invoke(self, body: bytes) -> dict[str, Any]:
        response = self.aws.client("lambda").invoke(FunctionName=self.notify_function, Payload=body)
        return dict(json.loads(response["Payload"].read() or b"{}"))


async def _pump(source: Any, target: Any) -> None:
    """Frames one way until `source` closes; then `target` closes with the same code."""
    async for message in source:
        if message.type == WSMsgType.TEXT:
            await target.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await target.send_bytes(message.data)
    if not target.closed:
        await target.close(code=source.close_code or 1000)


def jwt_key(secret_text: str) -> bytes:
    """The HMAC key as the backend takes it from `security.jwt.secret` (base64, padding optional)."""
    text = secret_text.strip()
    return base64.b64decode(text + "=" * (-len(text) % 4))


def serve(host: str, port: int, database_url: str, jwt_secret: str) -> None:
    """Deploy the project to a fresh emulator, then serve its stage at the app's paths until Ctrl-C."""
    from emulator import websocket_url
    from rollout import settings
    from rollout.factory import Factory
    from rollout.rehearsal import rehearsed
    from rollout.report import Reporter
    from rollout.stacks import describe

    factory = Factory()
    options = factory.options(poll_seconds=0)
    print("deploying the project to the emulator (the rehearsal's rollout)...", file=sys.stderr, flush=True)
    with rehearsed(
        settings.load("rehearsal"),
        Reporter(io.StringIO()),
        options,
        "local",
        factory,
        database_url,
        database_as_is=True,
        jwt_key=jwt_key(jwt_secret),
    ) as done:
        endpoint = done.summary.management_endpoint
        stage_url = websocket_url(endpoint.split("//", 1)[1].split(".", 1)[0], endpoint.rsplit("/", 1)[1])
        compute = describe(done.aws.client("cloudformation"), done.settings.stacks["compute"])
        assert compute is not None
        front = Front(stage_url, done.aws, compute.outputs["NotifyAliasArn"])
        banner = (
            f"the deployed stage ({stage_url}) on ws://{host}:{port}/ws/careconnect (also /ws/calls, "
            f"/ws/calls-ws, /ws/notifications, /); POST /notify on http://{host}:{port}"
        )
        web.run_app(
            front.app(),
            host=host,
            port=port,
            handle_signals=True,
            print=lambda _: print(banner, file=sys.stderr, flush=True),
        )
