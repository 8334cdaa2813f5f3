"""boto3 clients the handlers use, created lazily (boto3 is slow to import) and once per container."""

from __future__ import annotations

from typing import Any

from handlers.once import created_once


def read_secret(secret_arn: str) -> str:
    """A Secrets Manager secret's string value (database credentials or the JWT key)."""
    return str(_client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])


def rds_auth_token(host: str, port: int, user: str, region: str) -> str:
    client = _client("rds", region or None)
    return str(client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user, Region=region or None))


@created_once
def _client(service: str, region: str | None = None) -> Any:
    import boto3

    return boto3.client(service, region_name=region)


@created_once
def management_client(endpoint: str, region: str | None, pool_size: int) -> Any:
    """API Gateway management API client for one endpoint. botocore's standard retry mode retries
    throttling (LimitExceededException, TooManyRequestsException...) and 5xx with backoff and
    jitter; a 410 (GoneException) is never retried."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=pool_size,
        connect_timeout=2,
        read_timeout=5,
    )
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, region_name=region, config=config)
