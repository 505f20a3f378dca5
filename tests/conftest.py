"""Session-wide real servers: a Redis-compatible server and a Kafka-protocol broker.

`REDIS_URL` / `KAFKA_BOOTSTRAP` in the environment point the tests at external servers instead.
"""

from __future__ import annotations

import os

import pytest

from dedup_service.embedded import EmbeddedRedis
from devtools.embedded_kafka import EmbeddedKafka


@pytest.fixture(scope="session")
def redis_url():
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = EmbeddedRedis().start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def kafka_bootstrap():
    if os.environ.get("KAFKA_BOOTSTRAP"):
        yield os.environ["KAFKA_BOOTSTRAP"]
        return
    broker = EmbeddedKafka().start()
    try:
        yield broker.bootstrap
    finally:
        broker.cleanup()
