"""An endpoint that accepts connections and never answers (issue 22, 8): the command fails with
what happened, once the read timeout has passed, naming the endpoint (exit 2), rather than as
an unreachable network. The timeouts come from the factory (a second here instead of 120 s)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from botocore.config import Config

from rollout import cli
from rollout.factory import Factory


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # accepted, never answered
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_an_endpoint_that_never_answers_is_named(
    silent_endpoint: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    quick = Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "max_attempts": 1})
    code = cli.main(["status", "--env", "rehearsal", "--endpoint-url", silent_endpoint, "--json"],
                    Factory(client_config=quick))  # fmt: skip
    assert code == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["kind"] == "network"
    assert error["message"].startswith(f"{silent_endpoint} accepted the connection but sent no answer")
