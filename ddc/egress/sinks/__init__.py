"""Egress sinks by `[egress.sink] type`."""

from __future__ import annotations

from typing import Any

from ddc.daemon import import_named
from ddc.egress.sinks.base import Sink
from ddc.metrics import EgressMetrics

SINK_CLASSES = {
    "udp": "ddc.egress.sinks.udp:UdpSink",
    "tcp": "ddc.egress.sinks.tcp:TcpSink",
    "file": "ddc.egress.sinks.file:FileSink",
    "kafka": "ddc.egress.sinks.kafka:KafkaSink",
    "dedup": "ddc.egress.sinks.dedup:DedupSink",
}
# [egress.sink] client = "librdkafka": the same sink on a confluent-kafka producer
LIBRDKAFKA = "ddc.egress.sinks.kafka_rd:RdKafkaSink"


def make_sink(config: dict[str, Any], metrics: EgressMetrics) -> Sink:
    name = LIBRDKAFKA if config.get("client") == "librdkafka" else SINK_CLASSES[config["type"]]
    sink: Sink = import_named(name)(config, metrics)
    return sink
