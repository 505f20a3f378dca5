"""Ingress sources by `[ingress.source] type`."""

from __future__ import annotations

from typing import Any

from ddc.daemon import import_named
from ddc.ingress.sources.base import Source, Submit
from ddc.metrics import IngressMetrics

SOURCE_CLASSES = {
    "udp": "ddc.ingress.sources.udp:UdpSource",
    "tcp": "ddc.ingress.sources.tcp:TcpSource",
    "kafka": "ddc.ingress.sources.kafka:KafkaSource",
}
# [ingress.source] client = "librdkafka": the same source on a confluent-kafka consumer
LIBRDKAFKA = "ddc.ingress.sources.kafka_rd:RdKafkaSource"


def make_source(config: dict[str, Any], submit: Submit, metrics: IngressMetrics) -> Source:
    name = LIBRDKAFKA if config.get("client") == "librdkafka" else SOURCE_CLASSES[config["type"]]
    source: Source = import_named(name)(config, submit, metrics)
    return source
