"""The redis-py clients the dedup service talks to Redis with: fail fast, AUTH from a secret file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from redis.cluster import RedisCluster

from ddc.tokens import optional_token
from dedup_service.config import REDIS_TIMEOUT

RedisClient = redis.Redis | RedisCluster


def connect(
    url: str,
    *,
    cluster: bool = False,
    timeout: float = REDIS_TIMEOUT,
    password: str | None = None,
) -> RedisClient:
    """A redis-py client that fails fast (no hidden retries: the store decides what to retry).

    `password` is sent with AUTH unless the URL carries one."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": min(timeout, 2.0),
        "health_check_interval": 0,
    }
    if password is not None:
        options["password"] = password
    if cluster:
        return RedisCluster.from_url(url, **options)
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)


def connect_configured(config: Mapping[str, Any], url: str) -> RedisClient:
    """The client `[dedup]` describes, to the server at `url`."""
    password = optional_token(config["redis_password_file"], "dedup.redis_password_file")
    return connect(
        url, cluster=config["redis_cluster"], timeout=config["redis_timeout"], password=password
    )
