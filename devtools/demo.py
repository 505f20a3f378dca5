"""`scripts/demo`: the redundant-links pattern running locally, from the compose stack's own configs.

Two link pairs carry the same records, each through its own `ddc diode-sim` that loses a
different random share of the packets; both egresses hand what arrives to the dedup service
(Redis-backed), which forwards the first copy of each record to the target's Kafka topic
(an embedded Kafka-protocol broker). The demo plays the mirroring source
application, shows a live progress bar of records delivered once, and ends with a table.

Every ddc config is the one `compose/redundant.yml` mounts (`compose/config/redundant/`); only
addresses are overridden with `DDC__` environment variables, so the
demo and the compose stack cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dedup_service.embedded import EmbeddedRedis, free_port, wait_for_port
from devtools.embedded_kafka import EmbeddedKafka

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "compose" / "config" / "redundant"
LINKS = ("a", "b")
TOPIC = "deduplicated"  # the dedup sink's topic in compose/config/redundant/dedup.toml


@dataclass
class Link:
    name: str
    source_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    sim_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    egress_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    ingress_http: int = field(default_factory=free_port)
    egress_http: int = field(default_factory=free_port)
    sim_http: int = field(default_factory=free_port)


class Stack:
    """The local processes of the demo, stopped in reverse order of start."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.commands: dict[str, tuple[list[str], dict[str, str]]] = {}

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.commands[name] = (argv, env or {})
        log = open(self.workdir / f"{name}.log", "ab")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        log.close()
        self.processes = [(n, p) for n, p in self.processes if n != name] + [(name, process)]

    def process(self, name: str) -> subprocess.Popen:
        return dict(self.processes)[name]

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash would."""
        process = self.process(name)
        process.kill()
        process.wait(10)

    def restart(self, name: str) -> None:
        self.spawn(name, *self.commands[name])

    def check(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                log = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log}")

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in reversed(self.processes):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def get_json(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.loads(response.read())


def metrics(port: int) -> dict[str, float]:
    values: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                bare = name.split("{", 1)[0]
                values[bare] = values.get(bare, 0.0) + float(value)
    return values


def wait_http(stack: Stack, port: int, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stack.check()
        try:
            get_json(port, "/healthz")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer on port {port}") from None
            time.sleep(0.1)


class OutputCounter:
    """Reads the target topic (where the dedup service forwards first copies); counts ids seen."""

    def __init__(self, bootstrap: str, topic: str = TOPIC) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        partitions = self.consumer.partitions_for_topic(topic) or {0}
        self.consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        self.ids: dict[str, int] = {}

    def poll(self) -> int:
        while True:
            batches = self.consumer.poll(timeout_ms=50, max_records=10000)
            if not batches:
                return len(self.ids)
            for records in batches.values():
                for record in records:
                    key = json.loads(record.value)["id"]
                    self.ids[key] = self.ids.get(key, 0) + 1

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.ids.values())

    def close(self) -> None:
        self.consumer.close()


def progress(done: int, total: int, rate: float, width: int = 40) -> str:
    filled = int(width * done / total) if total else width
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} delivered once  {rate:,.0f} rec/s"
    )


def start_stack(stack: Stack, links: list[Link], args: argparse.Namespace) -> tuple[int, str]:
    """Starts everything; (dedup HTTP port, Kafka bootstrap of the target topic)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    python = sys.executable
    redis = EmbeddedRedis(data_dir=stack.workdir / "redis").start()
    stack.processes.append(("redis", redis.process))
    kafka = EmbeddedKafka(data_dir=stack.workdir / "kafka").start()
    stack.processes.append(("kafka", kafka.process))
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(TOPIC, 1, 1)])
    admin.close()
    dedup_http = free_port()
    stack.spawn(
        "dedup",
        [python, "-m", "dedup_service.cli", "serve", "-c", str(CONFIGS / "dedup.toml")],
        {
            "DDC__DEDUP__HTTP_LISTEN": f"127.0.0.1:{dedup_http}",
            "DDC__DEDUP__REDIS_URL": redis.url,
            "DDC__DEDUP__DATA_DIR": str(stack.workdir / "dedup-data"),
            "DDC__SINK__BOOTSTRAP_SERVERS": kafka.bootstrap,
        },
    )
    wait_http(stack, dedup_http, "dedup service")
    for seed, link in enumerate(links, start=1):
        stack.spawn(
            f"egress-{link.name}",
            [python, "-m", "ddc.cli", "egress", "-c", str(CONFIGS / f"egress-{link.name}.toml")],
            {
                "DDC__EGRESS__HTTP_LISTEN": f"127.0.0.1:{link.egress_http}",
                "DDC__TRANSPORT__LISTEN": f"127.0.0.1:{link.egress_port}",
                "DDC__SINK__URL": f"http://127.0.0.1:{dedup_http}",
            },
        )
        stack.spawn(
            f"diode-{link.name}",
            [
                python, "-m", "ddc.cli", "diode-sim",
                "--listen", f"127.0.0.1:{link.sim_port}",
                "--forward", f"127.0.0.1:{link.egress_port}",
                "--loss", str(args.loss), "--seed", str(seed * 1000 + 7),
                "--http", f"127.0.0.1:{link.sim_http}",
            ],
        )  # fmt: skip
        stack.spawn(
            f"ingress-{link.name}",
            [python, "-m", "ddc.cli", "ingress", "-c", str(CONFIGS / f"ingress-{link.name}.toml")],
            {
                "DDC__INGRESS__HTTP_LISTEN": f"127.0.0.1:{link.ingress_http}",
                "DDC__SOURCE__LISTEN": f"127.0.0.1:{link.source_port}",
                "DDC__TRANSPORT__DESTINATION": f"127.0.0.1:{link.sim_port}",
            },
        )
    for link in links:
        wait_http(stack, link.egress_http, f"egress {link.name}")
        wait_http(stack, link.sim_http, f"diode-sim {link.name}")
        wait_http(stack, link.ingress_http, f"ingress {link.name}")
    wait_for_port("127.0.0.1", dedup_http, 5)
    return dedup_http, kafka.bootstrap


def send_records(links: list[Link], count: int, rate: float, show) -> None:
    """The mirroring source application: every record to both ingresses, paced at `rate`/s."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    targets = [("127.0.0.1", link.source_port) for link in links]
    start = time.monotonic()
    for index in range(count):
        record = json.dumps(
            {"id": f"rec-{index:08d}", "seq": index, "reading": index * 0.5}
        ).encode()
        for target in targets:
            sock.sendto(record, target)
        ahead = (index + 1) / rate - (time.monotonic() - start)
        if ahead > 0.005:
            time.sleep(ahead)
        if index % 500 == 0:
            show()
    sock.close()


def run_demo(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ddc-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    links = [Link(name) for name in LINKS]
    stack = Stack(workdir)
    counter: OutputCounter | None = None
    tty = sys.stdout.isatty()
    last_print = [0.0, 0, time.monotonic()]  # time of last line, count then, start

    def show(final: bool = False) -> None:
        if counter is None:
            return
        done = counter.poll()
        now = time.monotonic()
        rate = done / max(1e-6, now - last_print[2])
        line = progress(done, args.records, rate)
        if tty:
            print("\r" + line, end="\n" if final else "", flush=True)
        elif final or now - last_print[0] >= 2.0:
            print(line, flush=True)
            last_print[0] = now

    print(f"DDC redundant-links demo: {args.records} records over links a and b, each losing "
          f"{args.loss:.1%} of its packets; logs in {workdir}")  # fmt: skip
    try:
        dedup_http, bootstrap = start_stack(stack, links, args)
        counter = OutputCounter(bootstrap)
        last_print[2] = time.monotonic()
        send_records(links, args.records, args.rate, show)
        deadline = time.monotonic() + args.timeout
        previous, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            stack.check()
            show()
            done = counter.poll()
            if done >= args.records:
                break
            if done != previous:
                previous, still_since = done, time.monotonic()
            elif time.monotonic() - still_since > 5.0:
                break
            time.sleep(0.2)
        show(final=True)
        time.sleep(0.5)
        return report(args, links, dedup_http, counter)
    finally:
        if counter is not None:
            counter.close()
        stack.stop()
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def report(
    args: argparse.Namespace, links: list[Link], dedup_http: int, counter: OutputCounter
) -> int:
    stats = get_json(dedup_http, "/v1/stats")["links"]
    delivered = counter.poll()
    rows = [("records sent (to each link)", args.records), ("delivered once", delivered)]
    rows.append(("duplicates removed by dedup", sum(s["duplicate"] for s in stats.values())))
    rows.append(("duplicates reaching the target", counter.duplicates))
    for link in links:
        egress = metrics(link.egress_http)
        sim = get_json(link.sim_http, "/healthz")
        arrived = int(egress.get("ddc_egress_records_delivered_total", 0))
        by_type = sim["dropped_by_type"]
        data_drops = by_type.get("data_first", 0) + by_type.get("data", 0)
        rows.append((f"link {link.name}: data packets dropped by the diode", data_drops))
        rows.append(
            (
                f"link {link.name}: packets counted lost by egress",
                int(egress["ddc_egress_packets_lost_total"]),
            )
        )
        rows.append((f"link {link.name}: records missing", args.records - arrived))
    missing_both = args.records - delivered
    rows.append(("records lost on both links", missing_both))
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>10,}")
    ok = counter.duplicates == 0 and delivered + missing_both == args.records
    print("\nresult:", "every record that crossed at least one link was delivered exactly once" if ok
          else "MISMATCH: see the logs")  # fmt: skip
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records", type=int, default=20000, help="records to send (default 20000)"
    )
    parser.add_argument(
        "--rate", type=float, default=4000.0, help="records per second (default 4000)"
    )
    parser.add_argument(
        "--loss", type=float, default=0.01, help="packet loss of each simulated diode"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="max wait after sending (s)")
    parser.add_argument(
        "--workdir", help="keep logs and data here (default: a temporary directory)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return run_demo(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
