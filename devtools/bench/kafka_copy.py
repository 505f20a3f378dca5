"""The copies `scripts/bench kafka` measures DDC against: consume a topic in a group and produce
every record to another topic on the same broker, partition for partition, no diode.

`python -m devtools.bench.kafka_copy python|rdkafka --bootstrap B --src S --dst D --group G
--count N`: "python" is kafka-python (the client DDC is specified on), "rdkafka" is
confluent-kafka (librdkafka), what most users would pick for a plain copy. Both use the same
producer settings (acks all, linger 20 ms, 256 KiB batches).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from devtools.embedded_kafka import FAST_GROUP_OPTIONS

PRODUCER_OPTIONS = {"acks": "all", "linger_ms": 20, "batch_size": 256 * 1024}


def copy_python(bootstrap: str, src: str, dst: str, group: str, count: int) -> int:
    from kafka import KafkaConsumer, KafkaProducer

    consumer = KafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **FAST_GROUP_OPTIONS,
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_OPTIONS)
    done = 0
    while done < count:
        for messages in consumer.poll(timeout_ms=200, max_records=2000).values():
            for m in messages:
                producer.send(
                    dst, key=m.key, value=m.value, headers=m.headers, partition=m.partition
                )
            done += len(messages)
        consumer.commit()
    producer.flush(60)
    producer.close()
    consumer.close(autocommit=False)
    return 0


def rdkafka_options(options: Mapping[str, object]) -> dict[str, object]:
    """kafka-python style keys as librdkafka properties (session_timeout_ms → session.timeout.ms,
    batch_size → batch.size)."""
    return {key.replace("_", "."): v for key, v in options.items()}


def copy_rdkafka(bootstrap: str, src: str, dst: str, group: str, count: int) -> int:
    from confluent_kafka import Consumer, KafkaException, Producer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **rdkafka_options(FAST_GROUP_OPTIONS),
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": PRODUCER_OPTIONS["linger_ms"],
            "batch.size": PRODUCER_OPTIONS["batch_size"],
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    consumer.subscribe([src])
    done = 0
    while done < count:
        messages = consumer.consume(num_messages=2000, timeout=0.2)
        for m in messages:
            if m.error():
                raise KafkaException(m.error())
            producer.produce(
                dst, value=m.value(), key=m.key(), headers=m.headers(), partition=m.partition() or 0
            )
        done += len(messages)
        producer.poll(0)
        if messages:
            consumer.commit(asynchronous=True)
    producer.flush(60)
    consumer.close()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="devtools.bench.kafka_copy")
    parser.add_argument("client", choices=("python", "rdkafka"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--src", required=True)
    parser.add_argument("--dst", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    run = copy_python if args.client == "python" else copy_rdkafka
    return run(args.bootstrap, args.src, args.dst, args.group, args.count)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
