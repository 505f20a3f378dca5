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


def make_source(config: dict[str, Any], submit: Submit, metrics: IngressMetrics) -> Source:
    source: Source = import_named(SOURCE_CLASSES[config["type"]])(config, submit, metrics)
    return source
