"""Ingress sources by `[ingress.source] type`."""

from __future__ import annotations

import importlib
from typing import Any

from ddc.ingress.sources.base import Source, Submit

SOURCE_CLASSES = {
    "udp": "ddc.ingress.sources.udp:UdpSource",
    "tcp": "ddc.ingress.sources.tcp:TcpSource",
    "kafka": "ddc.ingress.sources.kafka:KafkaSource",
}


def make_source(config: dict[str, Any], submit: Submit, metrics: Any) -> Source:
    module_name, _, class_name = SOURCE_CLASSES[config["type"]].partition(":")
    return getattr(importlib.import_module(module_name), class_name)(config, submit, metrics)
