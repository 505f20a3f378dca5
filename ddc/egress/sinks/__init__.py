"""Egress sinks by `[egress.sink] type`."""

from __future__ import annotations

import importlib
from typing import Any

from ddc.egress.sinks.base import Sink
from ddc.metrics import EgressMetrics

SINK_CLASSES = {
    "udp": "ddc.egress.sinks.udp:UdpSink",
    "tcp": "ddc.egress.sinks.tcp:TcpSink",
    "file": "ddc.egress.sinks.file:FileSink",
    "kafka": "ddc.egress.sinks.kafka:KafkaSink",
    "dedup": "ddc.egress.sinks.dedup:DedupSink",
}


def make_sink(config: dict[str, Any], metrics: EgressMetrics) -> Sink:
    module_name, _, class_name = SINK_CLASSES[config["type"]].partition(":")
    return getattr(importlib.import_module(module_name), class_name)(config, metrics)
