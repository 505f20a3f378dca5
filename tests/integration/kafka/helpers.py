"""Real `ddc ingress` / `ddc egress` processes and real Kafka clients for the Kafka tests."""

from __future__ import annotations

import os
import random
import socket
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from dedup_service.embedded import free_port, poll_until
from devtools.embedded_kafka import FAST_GROUP_OPTIONS, EmbeddedKafka
from devtools.embedded_kafka import create_topics as create_topics  # for the tests
from devtools.harness import DDC as DDC  # DDC and wait_until: re-exported for the tests
from devtools.harness import Daemon as ProcessDaemon
from devtools.harness import Process, write_toml
from devtools.harness import wait_until as wait_until

# --- Kafka ---------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{random.randrange(1 << 30):x}"


class Producer:
    """A librdkafka producer behind kafka-python's send/flush/close (what the tests call): the
    test's own traffic is produced in C, so the pair under test, not the test, sets the pace.
    Keys go to partitions by murmur2, as kafka-python and the Java client place them."""

    def __init__(self, bootstrap: str, **config: Any) -> None:
        self._client = rd_producer(bootstrap, **{"partitioner": "murmur2_random", **config})
        self.failed: list[str] = []

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.failed.append(str(error))

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        while True:
            try:
                self._client.produce(
                    topic, value, key, headers=headers, on_delivery=self._delivered, **extra
                )
                self._client.poll(0)
                return
            except BufferError:  # its queue is full: wait for acknowledgements
                self._client.poll(0.05)

    def flush(self, timeout: float = 60) -> None:
        left = self._client.flush(timeout)
        assert left == 0 and not self.failed, f"{left} unsent, failed: {self.failed[:3]}"

    def close(self) -> None:
        self.flush(10)


def producer(bootstrap: str, **config: Any) -> Producer:
    return Producer(bootstrap, **config)


@dataclass
class Consumed:
    """Records read back from a topic: (partition, offset, key, value, headers dict)."""

    records: list[Any] = field(default_factory=list)

    def add(self, messages: list[Any]) -> None:
        self.records.extend(messages)

    def __len__(self) -> int:
        return len(self.records)


@dataclass(slots=True)
class Message:
    """A record read back from a topic, with kafka-python's attribute names."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def scan_topic(
    bootstrap: str, topic: str, visit: Any, done: Any, timeout: float, partitions: int = 4
) -> None:
    """Call visit(message) for everything in `topic` from the start until done() or `timeout`
    (a librdkafka consumer: decoding in C keeps a scan of 100,000 records short)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer
    from confluent_kafka import TopicPartition as RdPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("scan"),
            "enable.auto.commit": False,
            "fetch.max.bytes": 16 * 1024**2,
            "max.partition.fetch.bytes": 2 * 1024**2,
        }
    )
    try:
        consumer.assign([RdPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])

        def drained() -> bool:
            for m in consumer.consume(num_messages=5000, timeout=0.3):
                if m.error() is None:
                    headers = m.headers() or []
                    visit(
                        Message(m.topic(), m.partition(), m.offset(), m.key(), m.value(), headers)
                    )
            return bool(done())

        if not done():
            poll_until(drained, timeout, interval=0)
    finally:
        consumer.close()


def read_topic(
    bootstrap: str, topic: str, until: Any, timeout: float, partitions: int = 4
) -> Consumed:
    """Everything in `topic` from the start, until `until(consumed)` is true or `timeout`."""
    consumed = Consumed()
    scan_topic(
        bootstrap, topic, consumed.records.append, lambda: until(consumed), timeout, partitions
    )
    return consumed


def src_of(message: Any) -> tuple[str, int, int]:
    """The ddc-src header of a mirrored record as (topic, partition, offset)."""
    value = dict(message.headers)["ddc-src"].decode()
    topic, partition, offset = value.rsplit("/", 2)
    return topic, int(partition), int(offset)


# --- a broker whose data outlives it ---------------------------------------------------------


class S3Store(Process):
    """moto's S3 server in a child process: the storage a restarted Tansu broker finds again."""

    def __init__(self, data_dir: Path) -> None:
        port = free_port()
        server = Path(sys.executable).with_name("moto_server")
        argv = [str(server), "-H", "127.0.0.1", "-p", str(port)]
        super().__init__("moto", argv, data_dir, http_port=port, ready_path="/")

    def start(self, timeout: float = 30.0) -> Self:
        super().start(timeout)
        request = urllib.request.Request(self.url("/tansu"), method="PUT")
        urllib.request.urlopen(request, timeout=10).close()
        return self


class S3Kafka(EmbeddedKafka):
    """The same Tansu broker with S3 storage (its memory storage forgets everything on restart)."""

    def __init__(self, store: S3Store, port: int | None = None, data_dir: Any = None) -> None:
        super().__init__(port, data_dir)
        self.store = store

    def command(self) -> list[str]:
        env = [
            f"AWS_ENDPOINT={self.store.url('')}",
            "AWS_ACCESS_KEY_ID=ddc",
            "AWS_SECRET_ACCESS_KEY=ddc",
            "AWS_DEFAULT_REGION=us-east-1",
            "AWS_ALLOW_HTTP=true",
        ]
        return ["env", *env, *super().command(), "--storage-engine", "s3://tansu/"]


def moto_available() -> bool:
    return Path(sys.executable).with_name("moto_server").exists()


# --- DDC processes -------------------------------------------------------------------------


ADMIN_TOKEN = "kafka-tests-admin-token-0123"  # every test ingress's /admin/* token


def admin_token_file(directory: Path) -> Path:
    """The ingresses' admin token file in `directory` (written once, mode 600)."""
    path = directory / "admin.token"
    if not path.exists():
        path.write_text(ADMIN_TOKEN + "\n")
        path.chmod(0o600)
    return path


class Daemon(ProcessDaemon):
    """One `ddc ingress|egress -c FILE` child process, its config written from `tables`; an
    ingress gets ADMIN_TOKEN (admin_token_file) and post() sends it."""

    def __init__(self, role: str, name: str, directory: Path, tables: dict[str, dict[str, Any]]):
        http_port = free_port()
        tables[role]["http_listen"] = f"127.0.0.1:{http_port}"
        if role == "ingress":
            tables[role]["admin_token_file"] = str(admin_token_file(directory))
        config = write_toml(directory / f"{role}-{name}.toml", tables)
        super().__init__(role, config, http_port, directory / f"{role}-{name}.log")
        if role == "ingress":
            self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def ingress_tables(
    bootstrap: str, topics: list[str], group: str, destination: int, **transport: Any
) -> dict[str, dict[str, Any]]:
    return {
        "ingress": {"name": group},
        "ingress.source": {
            "type": "kafka",
            "bootstrap_servers": [bootstrap],
            "topics": topics,
            "group_id": group,
            "commit_interval": 0.5,
        },
        "ingress.source.options": dict(FAST_GROUP_OPTIONS),
        "ingress.transport": {"destination": f"127.0.0.1:{destination}", **transport},
    }


def egress_tables(
    bootstrap: str, listen: int, sink: dict[str, Any], **transport: Any
) -> dict[str, dict[str, Any]]:
    return {
        "egress": {"name": f"eg-{listen}"},
        "egress.transport": {"listen": f"127.0.0.1:{listen}", **transport},
        "egress.sink": {"type": "kafka", "bootstrap_servers": [bootstrap], **sink},
    }


def rd_tables(tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Ingress tables with `client = "librdkafka"` and the same options as librdkafka names them."""
    from devtools.bench.kafka_copy import rdkafka_options

    tables["ingress.source"]["client"] = "librdkafka"
    tables["ingress.source.options"] = rdkafka_options(tables["ingress.source.options"])
    return tables


class Pair:
    """An ingress (Kafka source) and its egress (Kafka sink), one link."""

    def __init__(
        self,
        directory: Path,
        name: str,
        source: str,
        sink: str,
        topics: list[str],
        group: str,
        sink_config: dict[str, Any],
        ingress_transport: dict[str, Any] | None = None,
        egress_transport: dict[str, Any] | None = None,
        client: str = "kafka-python",
    ) -> None:
        """client: both ends' Kafka client ("librdkafka": confluent-kafka, its option names)."""
        port = free_port(socket.SOCK_DGRAM)
        if client == "librdkafka":
            sink_config = {**sink_config, "client": client}
        self.egress = Daemon(
            "egress",
            name,
            directory,
            egress_tables(sink, port, sink_config, **(egress_transport or {})),
        )
        tables = ingress_tables(source, topics, group, port, **(ingress_transport or {}))
        if client == "librdkafka":
            tables = rd_tables(tables)
        self.ingress = Daemon("ingress", name, directory, tables)

    def diagnosis(self) -> str:
        """Both sides' health and counters, for an assertion message."""
        parts = []
        for daemon in (self.ingress, self.egress):
            counters = [
                f"{name} {value}"
                for name, value in daemon.metrics().items()
                if name.startswith("ddc_") and "_created" not in name and value
            ]
            parts.append(f"{daemon.role} health {daemon.health()}\n" + "\n".join(counters))
        return "\n".join(parts)

    def start(self) -> Pair:
        self.egress.start()
        self.ingress.start()
        return self

    def stop(self) -> None:
        self.ingress.stop()
        self.egress.stop()


# --- librdkafka (confluent-kafka) clients and what the broker stores -------------------------

_CODEC_PROBE = """
import sys, time
from kafka import KafkaConsumer, TopicPartition
from kafka.record.default_records import DefaultRecordBatch
names = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
seen = set()
iterate = DefaultRecordBatch.__iter__
def spy(self):
    seen.add(names.get(self.compression_type, str(self.compression_type)))
    return iterate(self)
DefaultRecordBatch.__iter__ = spy
bootstrap, topic, partitions, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
parts = [TopicPartition(topic, p) for p in range(partitions)]
consumer.assign(parts)
consumer.seek_to_beginning(*parts)
read, deadline = 0, time.monotonic() + 60
while read < count and time.monotonic() < deadline:
    read += sum(len(m) for m in consumer.poll(timeout_ms=300).values())
consumer.close(autocommit=False)
print(read, ",".join(sorted(seen)))
"""


def stored_codecs(bootstrap: str, topic: str, count: int, partitions: int = 4) -> set[str]:
    """The compression codecs of the record batches the broker serves for `topic` (read by a
    kafka-python consumer in a child process that notes each batch's attributes)."""
    import subprocess

    argv = [sys.executable, "-c", _CODEC_PROBE, bootstrap, topic, str(partitions), str(count)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=True).stdout
    read, codecs = out.split()[0], out.split()[1] if len(out.split()) > 1 else ""
    assert int(read) >= count, f"read {read} of {count} records from {topic}"
    return set(codecs.split(",")) - {""}


def rd_producer(bootstrap: str, **config: Any) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, **config})


def rd_read_topic(
    bootstrap: str, topic: str, count: int, timeout: float, partitions: int = 4
) -> list[Any]:
    """`count` messages of `topic` from the start, read by a librdkafka consumer (or fewer at
    `timeout`)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer
    from confluent_kafka import TopicPartition as RdPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("rd-reader"),
            "enable.auto.commit": False,
        }
    )
    messages: list[Any] = []
    try:
        consumer.assign([RdPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])

        def done() -> bool:
            for message in consumer.consume(num_messages=1000, timeout=0.3):
                if message.error() is None:
                    messages.append(message)
            return len(messages) >= count

        poll_until(done, timeout, interval=0)
    finally:
        consumer.close()
    return messages
