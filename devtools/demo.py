"""`scripts/demo`: the redundant-links pattern running locally, from the compose stack's own configs.

Two link pairs carry the same records, each through its own `ddc diode-sim` that loses a
different random share of the packets; both egresses hand what arrives to the dedup service
(Redis-backed), which forwards the first copy of each record to the target's Kafka topic
(an embedded Kafka-protocol broker). The demo plays the mirroring source
application, shows a live progress bar of records delivered once, and ends with a table.

Every ddc config is the one `compose/redundant.yml` mounts (`compose/config/redundant/` of this
repository); only addresses are overridden with `DDC__` environment variables, so the demo and
the compose stack cannot drift apart. The configs use FEC 32+8 (forward error correction: the
egresses restore lost packets from parity); `--fec off` or `--fec K+M` overrides it the same way.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ddc.protocol.auth_keys import new_key_line
from ddc.protocol.fec import check_params
from dedup_service.embedded import EmbeddedRedis, free_port
from devtools import ROOT
from devtools.embedded_kafka import EmbeddedKafka, create_topics
from devtools.harness import DDC, Daemon, Process, Stack, python_argv, wait_progress

CONFIGS = ROOT / "compose" / "config" / "redundant"
LINKS = ("a", "b")
TOPIC = "deduplicated"  # the dedup sink's topic in compose/config/redundant/dedup.toml


@dataclass
class Link:
    """One of the two links: the port its ingress reads, and its three processes."""

    name: str
    source_port: int
    ingress: Daemon
    sim: Process
    egress: Daemon


@dataclass
class Topology:
    """The running demo: both links, the dedup service, the target broker's bootstrap."""

    links: list[Link]
    dedup: Process
    bootstrap: str


class OutputCounter:
    """Reads the target topic (where the dedup service forwards first copies); counts ids seen.

    A librdkafka consumer (confluent-kafka): kafka-python's took 19.5 us of CPU per record and
    read at most ~16,000 records/s on the 2-core bench machine (it could not verify the 20,000/s
    `scripts/bench redundant` offers, and took CPU from the stack it measures); this one 8.8 us,
    json.loads included. `unique(prefix)` is kept as records arrive (the bench asked it five
    times a second, and scanning every id seen in the run for a prefix grew with each trial).
    """

    def __init__(self, bootstrap: str, topic: str = TOPIC) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"ddc-output-counter-{secrets.token_hex(4)}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        metadata = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
        partitions = sorted(metadata.partitions) if metadata and metadata.partitions else [0]
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.ids: dict[str, int] = {}
        self.prefixes: dict[str, int] = {}  # the text before an id's last "-" → unique ids

    def poll(self) -> int:
        ids, prefixes = self.ids, self.prefixes
        while True:
            messages = self.consumer.consume(10000, 0.05)
            if not messages:
                return len(ids)
            for message in messages:
                if message.error() is not None:
                    continue
                key = json.loads(message.value())["id"]
                seen = ids.get(key, 0)
                ids[key] = seen + 1
                if not seen:
                    prefix = key.rpartition("-")[0]
                    prefixes[prefix] = prefixes.get(prefix, 0) + 1

    def unique(self, prefix: str) -> int:
        """Distinct ids seen of the form `{prefix}-{anything without a "-"}`."""
        return self.prefixes.get(prefix, 0)

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


def parse_fec(text: str) -> tuple[int, int] | None:
    """`--fec`: "off", or "K+M" (data and parity packets per group); None keeps the configs'."""
    if text == "config":
        return None
    if text == "off":
        return (0, 0)
    try:
        k, m = (int(part) for part in text.split("+"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected off or K+M (e.g. 32+8), got {text!r}") from None
    try:
        check_params(k, m)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return (k, m)


def start_stack(
    stack: Stack,
    workdir: Path,
    loss: float,
    fec: tuple[int, int] | None = None,
    dedup_env: dict[str, str] | None = None,
) -> Topology:
    """Starts everything in `stack` (the caller stops it), logs and data in `workdir`;
    `dedup_env`: more DDC__ overrides of the dedup service's config."""
    password = workdir / "redis_password"  # the stack's /run/secrets/redis_password
    password.write_text(secrets.token_urlsafe(32) + "\n")
    password.chmod(0o600)
    redis_server = EmbeddedRedis(data_dir=workdir / "redis", password=password.read_text().strip())
    redis, kafka = stack.start([redis_server, EmbeddedKafka(data_dir=workdir / "kafka")])
    create_topics(kafka.address, TOPIC, partitions=1)
    dedup_http = free_port()
    argv = python_argv("dedup_service.cli", "serve", "-c", str(CONFIGS / "dedup.toml"))
    token = workdir / "dedup_api_token"  # the stack's /run/secrets/dedup_api_token
    token.write_text(secrets.token_urlsafe(32) + "\n")
    token.chmod(0o600)
    keys = workdir / "link_auth_keys"  # the stack's /run/secrets/link_auth_keys
    keys.write_text(new_key_line(1) + "\n")
    keys.chmod(0o600)
    env = {
        "DDC__DEDUP__API_TOKEN_FILE": str(token),
        "DDC__DEDUP__HTTP_LISTEN": f"127.0.0.1:{dedup_http}",
        "DDC__DEDUP__REDIS_URL": f"redis://{redis.address}/0",
        "DDC__DEDUP__REDIS_PASSWORD_FILE": str(password),
        "DDC__DEDUP__DATA_DIR": str(workdir / "dedup-data"),
        "DDC__SINK__BOOTSTRAP_SERVERS": kafka.address,
        **(dedup_env or {}),
    }
    (dedup,) = stack.start([Process("dedup", argv, workdir, dedup_http, env)])
    links = [make_link(workdir, name, seed, loss, dedup, fec) for seed, name in enumerate(LINKS, 1)]
    stack.start(process for link in links for process in (link.egress, link.sim, link.ingress))
    return Topology(links, dedup, kafka.address)


def make_link(
    workdir: Path,
    name: str,
    seed: int,
    loss: float,
    dedup: Process,
    fec: tuple[int, int] | None = None,
) -> Link:
    """Link `name`'s processes (not started): ingress → diode-sim (seeded loss) → egress."""
    source_port, sim_port, sim_out, egress_port = (free_port(socket.SOCK_DGRAM) for _ in range(4))
    ingress_http, sim_http, egress_http = free_port(), free_port(), free_port()
    egress = Daemon(
        "egress",
        CONFIGS / f"egress-{name}.toml",
        egress_http,
        workdir / f"egress-{name}.log",
        {
            "DDC__EGRESS__HTTP_LISTEN": f"127.0.0.1:{egress_http}",
            "DDC__TRANSPORT__LISTEN": f"127.0.0.1:{egress_port}",
            "DDC__SINK__URL": dedup.url(""),
            "DDC__SINK__TOKEN_FILE": str(workdir / "dedup_api_token"),
            "DDC__TRANSPORT__AUTH_KEYS": str(workdir / "link_auth_keys"),
        },
    )
    sim_options = {
        "--listen": f"127.0.0.1:{sim_port}",
        "--forward": f"127.0.0.1:{egress_port}",
        "--forward-bind": f"127.0.0.1:{sim_out}",  # like a hardware diode: one fixed source
        "--loss": str(loss),
        "--seed": str(seed * 1000 + 7),
        "--http": f"127.0.0.1:{sim_http}",
    }
    sim = Process(
        f"diode-{name}",
        [*DDC, "diode-sim", *(part for item in sim_options.items() for part in item)],
        workdir,
        sim_http,
    )
    ingress_env = {
        "DDC__INGRESS__HTTP_LISTEN": f"127.0.0.1:{ingress_http}",
        "DDC__SOURCE__LISTEN": f"127.0.0.1:{source_port}",
        "DDC__TRANSPORT__DESTINATION": f"127.0.0.1:{sim_port}",
        "DDC__TRANSPORT__AUTH_KEYS": str(workdir / "link_auth_keys"),
    }
    if fec is not None:
        ingress_env["DDC__TRANSPORT__FEC_DATA"] = str(fec[0])
        ingress_env["DDC__TRANSPORT__FEC_PARITY"] = str(fec[1])
    ingress = Daemon(
        "ingress",
        CONFIGS / f"ingress-{name}.toml",
        ingress_http,
        workdir / f"ingress-{name}.log",
        ingress_env,
    )
    return Link(name, source_port, ingress, sim, egress)


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


class Progress:
    """The progress line: redrawn in place on a terminal, printed every 2 s otherwise."""

    def __init__(self, counter: OutputCounter, total: int) -> None:
        self.counter = counter
        self.total = total
        self.tty = sys.stdout.isatty()
        self.started = self.printed = time.monotonic()

    def show(self, final: bool = False) -> int:
        """Polls the target topic, shows the line; records delivered once so far."""
        done = self.counter.poll()
        now = time.monotonic()
        line = progress(done, self.total, done / max(1e-6, now - self.started))
        if self.tty:
            print("\r" + line, end="\n" if final else "", flush=True)
        elif final or now - self.printed >= 2.0:
            print(line, flush=True)
            self.printed = now
        return done


def tear_down(
    args: argparse.Namespace, stack: Stack, counter: OutputCounter | None, workdir: Path
) -> None:
    """After a run (scripts/demo, scripts/chaos): the counter closed, the stack stopped, the work
    directory removed unless --keep or --workdir."""
    if counter is not None:
        counter.close()
    stack.stop()
    if not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def run_demo(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ddc-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack()
    counter: OutputCounter | None = None
    fec = "as configured (32+8)"
    if args.fec is not None:
        fec = f"{args.fec[0]}+{args.fec[1]}" if args.fec[1] else "off"
    print(
        f"DDC redundant-links demo: {args.records} records over links a and b, each losing "
        f"{args.loss:.1%} of its packets, FEC {fec}; logs in {workdir}"
    )
    try:
        topology = start_stack(stack, workdir, args.loss, args.fec)
        counter = OutputCounter(topology.bootstrap)
        bar = Progress(counter, args.records)
        send_records(topology.links, args.records, args.rate, bar.show)

        def delivered() -> int:
            stack.check()
            return bar.show()

        # until every record arrived, or nothing more arrives for 5 s (loss on both links)
        wait_progress(delivered, lambda done: done >= args.records, args.timeout, 5.0, 0.2)
        bar.show(final=True)
        time.sleep(0.5)  # a late duplicate would still show in the table
        return report(args, topology, counter)
    finally:
        tear_down(args, stack, counter, workdir)


def report(args: argparse.Namespace, topology: Topology, counter: OutputCounter) -> int:
    stats = topology.dedup.get_json("/v1/stats")["links"]
    delivered = counter.poll()
    rows = [("records sent (to each link)", args.records), ("delivered once", delivered)]
    rows.append(("duplicates removed by dedup", sum(s["duplicate"] for s in stats.values())))
    rows.append(("duplicates reaching the target", counter.duplicates))
    for link in topology.links:
        egress = link.egress.metrics()
        by_type = link.sim.health()["dropped_by_type"]
        arrived = int(egress.get("ddc_egress_records_delivered_total", 0))
        data_drops = by_type.get("data_first", 0) + by_type.get("data", 0)
        rows.append((f"link {link.name}: data packets dropped by the diode", data_drops))
        recovered = int(egress.get("ddc_egress_fec_recovered_packets_total", 0))
        rows.append((f"link {link.name}: packets recovered by FEC", recovered))
        lost = int(egress["ddc_egress_packets_lost_total"])
        rows.append((f"link {link.name}: packets lost after repair", lost))
        rows.append((f"link {link.name}: records lost after repair", args.records - arrived))
    missing_both = args.records - delivered
    rows.append(("records lost on both links", missing_both))
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>10,}")
    ok = counter.duplicates == 0 and delivered + missing_both == args.records
    verdict = (
        "every record that crossed at least one link was delivered exactly once"
        if ok
        else "MISMATCH: see the logs"
    )
    print("\nresult:", verdict)
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
    parser.add_argument(
        "--fec",
        type=parse_fec,
        default=None,
        help="off, or K+M data+parity packets per group (default: the configs' 32+8)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="max wait after sending (s)")
    parser.add_argument(
        "--workdir", help="keep logs and data here (default: a temporary directory)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return run_demo(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
