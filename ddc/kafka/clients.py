"""The kafka-python classes the sources, sinks and the merge loop use, from one place."""

from __future__ import annotations

from kafka import (
    AsyncConsumerRebalanceListener,
    KafkaConsumer,
    KafkaProducer,
    OffsetAndMetadata,
    TopicPartition,
)

__all__ = [
    "AsyncConsumerRebalanceListener",
    "KafkaConsumer",
    "KafkaProducer",
    "OffsetAndMetadata",
    "TopicPartition",
]
