"""`scripts/bench kafka`: topic → pair → topic against plain consume→produce copies, same run.

Every contender moves the same pre-produced topic of fixed-size records into a fresh topic on
the same broker: two baselines are one process that consumes and produces (no diode), with
kafka-python and with librdkafka (confluent-kafka, devtools/bench/kafka_copy.py); DDC is
`ddc ingress` (Kafka source) → UDP → `ddc egress` (Kafka sink), with the default disk spool and
with the in-memory one, and with `client = "librdkafka"` on both ends (disk spool). A reader in this process counts the records arriving in each target
topic; the rate is records over the time from the first arrival to the last, so group joins
and process start-up do not count.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from dedup_service.embedded import free_port
from devtools.bench.common import cpu_seconds, mib, peak_rss, print_table
from devtools.bench.kafka_copy import rdkafka_options
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


# --- the contenders -------------------------------------------------------------------------


def run_copy(
    client: str, bootstrap: str, src: str, count: int, timeout: float, work: Path, tag: str
) -> dict[str, Any]:
    """A baseline: devtools.bench.kafka_copy with kafka-python or librdkafka, its own topic."""
    dst = f"{src}-copy-{tag}"
    create_topics(bootstrap, dst, partitions=PARTITIONS)
    arrivals = Arrivals(bootstrap, dst, count, timeout)
    arrivals.start()
    arrivals.ready.wait(30)
    argv = python_argv(
        "devtools.bench.kafka_copy",
        client,
        "--bootstrap",
        bootstrap,
        "--src",
        src,
        "--dst",
        dst,
        "--group",
        f"{src}-{tag}",
        "--count",
        str(count),
    )
    copier = Process(f"copy-{client}", argv, work).start()
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


def run_ddc(
    bootstrap: str,
    src: str,
    count: int,
    timeout: float,
    work: Path,
    spool: str,
    profile: str,
    tag: str,
) -> dict[str, Any]:
    """The pair; `spool` "disk" (the default config) or "memory" (`[egress.spool] dir = ""`), or
    "librdkafka": the default config with `client = "librdkafka"` on both ends."""
    dst = f"{src}-ddc-{tag}"
    work = work / tag
    work.mkdir()
    create_topics(bootstrap, dst, partitions=PARTITIONS)
    client = "librdkafka" if spool == "librdkafka" else "kafka-python"
    sink_options: dict[str, Any] = {"linger_ms": 20, "batch_size": 256 * 1024}
    source_options: dict[str, Any] = dict(FAST_GROUP_OPTIONS)
    if client == "librdkafka":
        spool = "disk"
        sink_options = rdkafka_options(sink_options)
        source_options = rdkafka_options(source_options)
    udp, http_in, http_out = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    egress_config = write_toml(
        work / "egress.toml",
        {
            "egress": {"name": "bench", "http_listen": f"127.0.0.1:{http_out}"},
            "egress.transport": {"listen": f"127.0.0.1:{udp}"},
            "egress.sink": {
                "type": "kafka",
                "bootstrap_servers": [bootstrap],
                "topic_map": {src: dst},
                "client": client,
            },
            "egress.sink.options": sink_options,
            "egress.spool": {"dir": str(work / "spool") if spool == "disk" else ""},
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
                "group_id": f"{src}-ddc-{tag}",
                "client": client,
            },
            "ingress.source.options": source_options,
            "ingress.transport": {"destination": f"127.0.0.1:{udp}"},
        },
    )
    arrivals = Arrivals(bootstrap, dst, count, timeout)
    arrivals.start()
    arrivals.ready.wait(30)
    egress = Daemon("egress", egress_config, http_out, work / "egress.log")
    ingress = Daemon("ingress", ingress_config, http_in, work / "ingress.log")
    daemons = {"ingress": ingress, "egress": egress}
    stack = Stack()
    try:
        stack.start([egress, ingress])
        spies = [py_spy(d, Path(profile) / f"{n}-{tag}") for n, d in daemons.items() if profile]
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
    for spy in spies:
        spy.wait(30)
    return {
        "count": arrivals.count,
        "rate": arrivals.rate(),
        "rss": rss,
        "cpu": cpu,
        "lost": lost,
        "dropped": dropped,
    }


def py_spy(daemon: Daemon, out: Path) -> subprocess.Popen[bytes]:
    """py-spy recording `daemon` until it exits, collapsed stacks in `out`.txt."""
    assert daemon.process is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = ["py-spy", "record", "-p", str(daemon.process.pid), "-r", "200", "-f", "raw"]
    spy = Path(sys.executable).parent / "py-spy"
    argv[0] = str(spy) if spy.exists() else "py-spy"
    return subprocess.Popen([*argv, "-o", f"{out}.txt"], stdout=subprocess.DEVNULL)


# --- entry points ----------------------------------------------------------------------------

CONTENDERS = ("python", "rdkafka", "disk", "memory", "librdkafka")
LABELS = {
    "python": "kafka-python copy (no diode)",
    "rdkafka": "librdkafka copy (no diode)",
    "disk": "ddc pair, disk spool (default)",
    "memory": "ddc pair, in-memory spool",
    "librdkafka": "ddc pair, librdkafka client",
}
# the ratios the issues ask for: (numerator, denominator, target)
RATIOS = (
    ("disk", "memory", 0.8),
    ("disk", "python", 1.0),
    ("disk", "rdkafka", 0.5),
    ("librdkafka", "python", 1.0),
    ("librdkafka", "rdkafka", 0.5),
)


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    """One row per contender and round; the ratios of the median rates, and per round."""
    rows = []
    for name, runs in results.items():
        for round_, result in enumerate(runs, 1):
            rss = ", ".join(f"{k} {mib(v):.0f}" for k, v in result["rss"].items())
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in result["cpu"].items())
            rows.append([LABELS[name], round_, result["count"], result["rate"], rss, cpu])
    print_table(["path", "round", "records", "msgs/s", "peak RSS MiB", "CPU s"], rows)
    medians = {name: statistics.median(r["rate"] for r in runs) for name, runs in results.items()}
    for top, bottom, target in RATIOS:
        if top in results and bottom in results and medians[bottom]:
            each = [
                a["rate"] / b["rate"]
                for a, b in zip(results[top], results[bottom], strict=True)
                if b["rate"]
            ]
            rounds = (
                " (rounds: " + ", ".join(f"{r:.2f}" for r in each) + ")" if len(each) > 1 else ""
            )
            ratio = medians[top] / medians[bottom]
            print(f"ratio {top}/{bottom} {ratio:.2f}{rounds} (target >= {target})")
    if "disk" in results and "memory" in results:
        # CPU time is less at the mercy of other jobs on the machine than the wall clock
        spent = {
            n: statistics.median(r["cpu"]["egress"] for r in results[n]) for n in ("disk", "memory")
        }
        if spent["disk"]:
            print(
                f"egress CPU s memory/disk {spent['memory'] / spent['disk']:.2f} "
                f"({spent['memory']:.1f} / {spent['disk']:.1f}, medians)"
            )
    for name in ("disk", "memory", "librdkafka"):
        for r in results.get(name, []):
            print(f"egress ({name}): {r['lost']:.0f} packets lost, {r['dropped']:.0f} dropped")


def bench(args: argparse.Namespace) -> int:
    from devtools.embedded_kafka import EmbeddedKafka

    broker = None
    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        broker = EmbeddedKafka().start()
        bootstrap = broker.bootstrap
    work = Path(tempfile.mkdtemp(prefix="ddc-bench-kafka-"))
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        src = f"bench-{os.getpid()}"
        create_topics(bootstrap, src, partitions=PARTITIONS)
        seconds = fill(bootstrap, src, args.records, args.size)
        print(f"{args.records:,} records of {args.size} bytes in {src} ({seconds:.1f}s to produce)")
        # rounds alternate the contenders, so that a change in the machine's load between
        # two contenders shows as spread between rounds instead of as a ratio
        for round_ in range(1, args.rounds + 1):
            for name in args.only.split(","):
                tag = f"{name}{round_}" if args.rounds > 1 else name
                if name in ("python", "rdkafka"):
                    result = run_copy(name, bootstrap, src, args.records, args.timeout, work, tag)
                else:
                    result = run_ddc(
                        bootstrap, src, args.records, args.timeout, work, name, args.profile, tag
                    )
                results.setdefault(name, []).append(result)
    finally:
        if broker is not None:
            broker.cleanup()
    report(results)
    print(f"logs in {work}")
    if any(r["count"] < args.records for runs in results.values() for r in runs):
        print("incomplete: not every record arrived within --timeout", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench kafka", description=__doc__.splitlines()[0]
    )
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
    parser.add_argument(
        "--only", default=",".join(CONTENDERS), help=f"contenders, from {','.join(CONTENDERS)}"
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of each contender, alternated")
    parser.add_argument("--profile", default="", help="py-spy the daemons into this directory")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contender(s) {sorted(unknown)}; choose from {CONTENDERS}")
    return bench(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
