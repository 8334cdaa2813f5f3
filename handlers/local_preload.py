"""What the local API's execution environments share before they fork (handlers/local_environments.py
lists this module in the fork server's preload; the server itself never imports it): every
handler module, PyJWT with cryptography (the first authenticate's import, 0.36 s), and boto3's
default session with the management API's service model loaded (a first client costs 0.38 s,
the next 8 ms), so a new environment pays a fork, not those. `gc.freeze()` last: a worker's
collections then leave these objects alone, and their pages shared with the fork server.
"""

from __future__ import annotations

import gc

import boto3
import jwt  # noqa: F401

import handlers.auth
import handlers.connect
import handlers.default
import handlers.disconnect
import handlers.notify
import handlers.sender  # noqa: F401

# Explicit keys and region: the default session resolves no credentials here (a worker resolves
# its own, from its environment, on its first client).
boto3.client(
    "apigatewaymanagementapi",
    endpoint_url="http://127.0.0.1:9",
    region_name="us-east-1",
    aws_access_key_id="preload",
    aws_secret_access_key="preload",
)
gc.freeze()
