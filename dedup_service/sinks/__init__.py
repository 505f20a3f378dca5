"""Dedup sinks: kafka | udp | tcp | file | http."""

from __future__ import annotations

import importlib
from typing import Any

from dedup_service.sinks.base import Sink

SINK_CLASSES = {
    "kafka": "dedup_service.sinks.kafka:KafkaSink",
    "udp": "dedup_service.sinks.udp:UdpSink",
    "tcp": "dedup_service.sinks.tcp:TcpSink",
    "file": "dedup_service.sinks.file:FileSink",
    "http": "dedup_service.sinks.http:HttpSink",
}
# [dedup.sink] client = "librdkafka": the Kafka sink on a confluent-kafka producer
LIBRDKAFKA = "dedup_service.sinks.kafka_rd:RdKafkaSink"


def build_sink(config: dict[str, Any]) -> Sink:
    name = LIBRDKAFKA if config.get("client") == "librdkafka" else SINK_CLASSES[config["type"]]
    module_name, _, class_name = name.partition(":")
    return getattr(importlib.import_module(module_name), class_name)(config)
