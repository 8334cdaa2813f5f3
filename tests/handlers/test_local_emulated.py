"""`python -m handlers.local --emulated` as a user runs it: the project deployed to the emulator
(on this PostgreSQL, with this JWT secret) and served at the app's paths, each frame through the
deployed stage into the deployed zip: the app authenticates with a backend-minted token on
`/ws/careconnect`, its heartbeat is answered, the backend's `POST /notify` reaches it, and
`/ws/notifications` arrives at the deployed `$connect` as API Gateway's `service=notifications`."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time

import aiohttp
import psycopg
import pytest

from rollout import session
from tests.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # a whole rollout in a fresh process: about 90 s


async def until(socket: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, object]:
    while True:
        frame = json.loads((await socket.receive(timeout=60)).data)
        if frame["type"] == kind:
            return dict(frame)


def test_the_emulated_command_serves_the_deployed_stage_at_the_apps_paths(postgres_server: str) -> None:
    key, port = os.urandom(48), free_port()
    with session.throwaway_database(postgres_server) as database:
        env = {**os.environ, "DATABASE_URL": database, "JWT_SECRET": base64.b64encode(key).decode().rstrip("=")}
        env.pop("AWS_WEBSOCKET_API_GATEWAY_ENDPOINT", None)
        server = subprocess.Popen([sys.executable, "-m", "handlers.local", "--emulated", "--port", str(port)],
                                  env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert server.stderr is not None
            deadline, banner = time.monotonic() + 240, ""
            while f"ws://127.0.0.1:{port}/ws/careconnect" not in banner and time.monotonic() < deadline:
                banner = server.stderr.readline()
                assert banner or server.poll() is None, "the command stopped before serving"
            assert "the deployed stage (ws://127.0.0.1:" in banner, banner

            async def app_and_backend() -> dict[str, object]:
                base = f"ws://127.0.0.1:{port}"
                async with aiohttp.ClientSession() as http:
                    async with http.ws_connect(f"{base}/ws/careconnect") as app:
                        await app.send_json(
                            {"type": "authenticate", "token": session.mint(key, session.EMAIL, "PATIENT")}
                        )
                        authenticated = await until(app, "authentication-success")
                        await app.send_json({"type": "heartbeat"})
                        await until(app, "heartbeat-response")
                        push = {"recipients": {"emails": [session.EMAIL]},
                                "message": {"type": "system-announcement", "title": "Hello", "message": "from the backend"}}  # fmt: skip
                        async with http.post(f"http://127.0.0.1:{port}/notify", json=push) as answer:
                            delivered = await answer.json()
                        pushed = await until(app, "system-announcement")
                    async with http.ws_connect(f"{base}/ws/notifications") as notifications:
                        await notifications.send_str("ping")
                        await notifications.receive(timeout=60)
                return {"user": authenticated["userEmail"], "delivered": delivered, "pushed": pushed["title"]}

            seen = asyncio.run(app_and_backend())
            assert seen == {"user": session.EMAIL, "delivered": {"delivered": 1, "gone": 0, "failed": 0, "retried": 0},
                            "pushed": "Hello"}  # fmt: skip
            with psycopg.connect(database) as connection:
                services = connection.execute(
                    "SELECT metadata::jsonb->>'service' FROM websocket_connections"
                ).fetchall()
            assert sorted(s for (s,) in services) == ["careconnect", "notifications"]
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=60) == 0
        finally:
            server.kill()
            server.wait()
