"""Kafka side of the stack checks, run inside a ddc container on a stack's network (the brokers
advertise their compose service names): create topics, produce records with ids, count ids.

    python kafka_io.py create BOOTSTRAP TOPIC PARTITIONS
    python kafka_io.py produce BOOTSTRAP TOPIC PREFIX FIRST COUNT
    python kafka_io.py count BOOTSTRAP TOPIC PREFIX EXPECTED TIMEOUT_S
    python kafka_io.py generated BOOTSTRAP TOPIC

`count` reads the whole topic (no group) until EXPECTED distinct ids of PREFIX were seen, then
two more seconds for duplicates, and prints {"distinct": n, "copies": n, "missing": [...]}.
Only kafka-python, which the image ships.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def create(bootstrap: str, topic: str, partitions: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            break
        except Exception:  # the broker is still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        admin.create_topics([NewTopic(topic, int(partitions), 1)])
    except TopicAlreadyExistsError:
        pass
    admin.close()


def produce(bootstrap: str, topic: str, prefix: str, first: str, count: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    start = int(first)
    for index in range(start, start + int(count)):
        value = json.dumps({"id": f"{prefix}{index}", "seq": index}).encode()
        producer.send(topic, value=value, key=str(index).encode())
    producer.flush(60)
    producer.close()


def count(bootstrap: str, topic: str, prefix: str, expected: str, timeout: str) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    deadline = time.monotonic() + float(timeout)
    while not (partitions := consumer.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            print(json.dumps({"distinct": 0, "copies": 0, "missing": ["no topic"]}))
            return
        time.sleep(0.5)
    assigned = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    copies: dict[str, int] = {}
    want = int(expected)
    settle_until = None
    while time.monotonic() < (settle_until or deadline):
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                try:
                    ident = str(json.loads(record.value)["id"])
                except (ValueError, KeyError, TypeError):
                    continue
                if ident.startswith(prefix):
                    copies[ident] = copies.get(ident, 0) + 1
        if settle_until is None and len(copies) >= want:
            settle_until = time.monotonic() + 2.0
    consumer.close()
    missing = [f"{prefix}{i}" for i in range(want) if f"{prefix}{i}" not in copies]
    print(
        json.dumps(
            {"distinct": len(copies), "copies": sum(copies.values()), "missing": missing[:10]}
        )
    )


def generated(bootstrap: str, topic: str) -> None:
    """The `seq` of every record mirror.py --generate made (JSON with "id", "seq" and "ts"),
    read from the start of the topic: {"seqs": [...]} (sorted, duplicates kept)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = consumer.partitions_for_topic(topic) or set()
    assigned = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    ends = consumer.end_offsets(assigned)
    seqs = []
    while any(consumer.position(tp) < ends[tp] for tp in assigned):
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                try:
                    value = json.loads(record.value)
                except ValueError:
                    continue
                if isinstance(value, dict) and "ts" in value and "seq" in value:
                    seqs.append(int(value["seq"]))
    consumer.close()
    print(json.dumps({"seqs": sorted(seqs)}))


if __name__ == "__main__":
    commands: dict[str, Callable[..., None]] = {
        "create": create,
        "produce": produce,
        "count": count,
        "generated": generated,
    }
    commands[sys.argv[1]](*sys.argv[2:])
