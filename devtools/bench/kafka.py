"""`scripts/bench kafka`: topic → pair → topic against a plain kafka-python copy, same run.

Both contenders move the same pre-produced topic of fixed-size records into a fresh topic on
the same broker: the baseline is one kafka-python process that consumes and produces (no
diode), DDC is `ddc ingress` (Kafka source) → UDP → `ddc egress` (Kafka sink). A reader in this
process counts the records arriving in each target topic; the rate is records over the time
from the first arrival to the last, so group joins and process start-up do not count.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from dedup_service.embedded import free_port
from devtools.bench.common import cpu_seconds, mib, peak_rss, print_table
from devtools.embedded_kafka import FAST_GROUP_OPTIONS, create_topics
from devtools.harness import Daemon, Process, Stack, python_argv, write_toml

PARTITIONS = 4
PRODUCER_OPTIONS = {"acks": "all", "linger_ms": 20, "batch_size": 256 * 1024}


# --- Kafka helpers -------------------------------------------------------------------------


def fill(bootstrap: str, topic: str, count: int, size: int) -> float:
    """Produce `count` records of `size` value bytes; seconds taken."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_OPTIONS)
    payload = os.urandom(size)
    started = time.monotonic()
    for i in range(count):
        producer.send(topic, key=b"%010d" % i, value=payload)
    producer.flush(120)
    producer.close()
    return time.monotonic() - started


class Arrivals(threading.Thread):
    """Counts records arriving in a topic; first and last arrival times."""

    def __init__(self, bootstrap: str, topic: str, expect: int, timeout: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.expect, self.timeout = bootstrap, topic, expect, timeout
        self.count = 0
        self.first = self.last = 0.0
        self.ready = threading.Event()

    def run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_bytes=16 * 1024**2
        )
        partitions = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        self.ready.set()
        deadline = time.monotonic() + self.timeout
        try:
            while self.count < self.expect and time.monotonic() < deadline:
                batch = consumer.poll(timeout_ms=200, max_records=10000)
                got = sum(len(messages) for messages in batch.values())
                if got:
                    now = time.monotonic()
                    self.first = self.first or now
                    self.last = now
                    self.count += got
        finally:
            consumer.close(autocommit=False)

    def rate(self) -> float:
        span = self.last - self.first
        return self.count / span if self.count > 1 and span > 0 else 0.0


# --- the two contenders --------------------------------------------------------------------


def copy(bootstrap: str, src: str, dst: str, group: str, count: int) -> int:
    """The baseline: consume `src` in a group and produce each record to `dst`, `count` of them."""
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


def run_baseline(
    bootstrap: str, src: str, count: int, timeout: float, work: Path
) -> dict[str, Any]:
    dst = f"{src}-copy"
    create_topics(bootstrap, dst, partitions=PARTITIONS)
    arrivals = Arrivals(bootstrap, dst, count, timeout)
    arrivals.start()
    arrivals.ready.wait(30)
    argv = python_argv(
        "devtools.bench.kafka",
        "copy",
        "--bootstrap",
        bootstrap,
        "--src",
        src,
        "--dst",
        dst,
        "--group",
        f"{src}-baseline",
        "--count",
        str(count),
    )
    copier = Process("copy", argv, work).start()
    assert copier.process is not None
    rss, cpu = 0, 0.0
    while arrivals.is_alive():
        arrivals.join(0.5)
        if copier.process.poll() is None:
            rss, cpu = max(rss, peak_rss(copier.process.pid)), cpu_seconds(copier.process.pid)
    copier.stop(30)
    return {
        "count": arrivals.count,
        "rate": arrivals.rate(),
        "rss": {"copy": rss},
        "cpu": {"copy": cpu},
    }


def run_ddc(bootstrap: str, src: str, count: int, timeout: float, work: Path) -> dict[str, Any]:
    dst = f"{src}-ddc"
    create_topics(bootstrap, dst, partitions=PARTITIONS)
    udp, http_in, http_out = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    egress_config = write_toml(
        work / "egress.toml",
        {
            "egress": {"name": "bench", "http_listen": f"127.0.0.1:{http_out}"},
            "egress.transport": {"listen": f"127.0.0.1:{udp}"},
            # no back-pressure crosses a diode: the egress must be able to buffer what the ingress
            # reads ahead while its producer catches up, or it drops (and counts) the excess
            "egress.sink": {
                "type": "kafka",
                "bootstrap_servers": [bootstrap],
                "topic_map": {src: dst},
                "buffer_max_records": count + 1,
            },
            "egress.sink.options": {"linger_ms": 20, "batch_size": 256 * 1024},
        },
    )
    ingress_config = write_toml(
        work / "ingress.toml",
        {
            "ingress": {"name": "bench", "http_listen": f"127.0.0.1:{http_in}"},
            "ingress.source": {
                "type": "kafka",
                "bootstrap_servers": [bootstrap],
                "topics": [src],
                "group_id": f"{src}-ddc",
            },
            "ingress.source.options": FAST_GROUP_OPTIONS,
            "ingress.transport": {"destination": f"127.0.0.1:{udp}"},
        },
    )
    arrivals = Arrivals(bootstrap, dst, count, timeout)
    arrivals.start()
    arrivals.ready.wait(30)
    egress = Daemon("egress", egress_config, http_out, work / "egress.log")
    ingress = Daemon("ingress", ingress_config, http_in, work / "ingress.log")
    stack = Stack()
    try:
        stack.start([egress, ingress])
        daemons = {"ingress": ingress, "egress": egress}
        rss, cpu = dict.fromkeys(daemons, 0), dict.fromkeys(daemons, 0.0)
        lost = dropped = 0.0
        while arrivals.is_alive() and arrivals.count + dropped < count:
            arrivals.join(0.5)
            for name, daemon in daemons.items():
                if daemon.process is not None and daemon.process.poll() is None:
                    rss[name] = max(rss[name], peak_rss(daemon.process.pid))
                    cpu[name] = cpu_seconds(daemon.process.pid)
            metrics = egress.metrics()
            lost = metrics.get("ddc_egress_packets_lost_total", 0.0)
            dropped = metrics.get("ddc_egress_records_dropped_total", 0.0)
    finally:
        stack.stop()
    return {
        "count": arrivals.count,
        "rate": arrivals.rate(),
        "rss": rss,
        "cpu": cpu,
        "lost": lost,
        "dropped": dropped,
    }


# --- entry points ----------------------------------------------------------------------------


def bench(args: argparse.Namespace) -> int:
    from devtools.embedded_kafka import EmbeddedKafka

    broker = None
    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        broker = EmbeddedKafka().start()
        bootstrap = broker.bootstrap
    work = Path(tempfile.mkdtemp(prefix="ddc-bench-kafka-"))
    try:
        src = f"bench-{os.getpid()}"
        create_topics(bootstrap, src, partitions=PARTITIONS)
        seconds = fill(bootstrap, src, args.records, args.size)
        print(f"{args.records:,} records of {args.size} bytes in {src} ({seconds:.1f}s to produce)")
        baseline = run_baseline(bootstrap, src, args.records, args.timeout, work)
        ddc = run_ddc(bootstrap, src, args.records, args.timeout, work)
    finally:
        if broker is not None:
            broker.cleanup()
    ratio = ddc["rate"] / baseline["rate"] if baseline["rate"] else 0.0
    print_table(
        ["path", "records", "msgs/s", "ratio", "peak RSS MiB", "CPU s"],
        [
            [
                "kafka-python copy (no diode)",
                baseline["count"],
                baseline["rate"],
                1.0,
                f"copy {mib(baseline['rss']['copy']):.0f}",
                f"copy {baseline['cpu']['copy']:.1f}",
            ],
            [
                "ddc ingress → UDP → ddc egress",
                ddc["count"],
                ddc["rate"],
                ratio,
                f"ingress {mib(ddc['rss']['ingress']):.0f}, egress {mib(ddc['rss']['egress']):.0f}",
                f"ingress {ddc['cpu']['ingress']:.1f}, egress {ddc['cpu']['egress']:.1f}",
            ],
        ],
    )
    print(f"ratio {ratio:.2f} (target >= 0.8); logs in {work}")
    print(f"egress: {ddc['lost']:.0f} packets lost, {ddc['dropped']:.0f} records dropped")
    complete = baseline["count"] >= args.records and ddc["count"] >= args.records
    if not complete:
        print("incomplete: not every record arrived within --timeout", file=sys.stderr)
    return 0 if complete else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench kafka", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command")
    copy_parser = sub.add_parser("copy", help=argparse.SUPPRESS)
    copy_parser.add_argument("--bootstrap", required=True)
    copy_parser.add_argument("--src", required=True)
    copy_parser.add_argument("--dst", required=True)
    copy_parser.add_argument("--group", required=True)
    copy_parser.add_argument("--count", type=int, required=True)
    parser.add_argument(
        "--records", type=int, default=200_000, help="records to move (default 200000)"
    )
    parser.add_argument(
        "--size", type=int, default=200, help="value bytes per record (default 200)"
    )
    parser.add_argument(
        "--bootstrap", help="external broker (else KAFKA_BOOTSTRAP, else an embedded Tansu)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="limit per contender (s)")
    args = parser.parse_args(argv)
    if args.command == "copy":
        return copy(args.bootstrap, args.src, args.dst, args.group, args.count)
    return bench(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
