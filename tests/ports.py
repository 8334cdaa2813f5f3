"""A loopback port nobody listens on (yet): for servers the tests and benchmarks start, and for
"nothing listens here" cases."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
