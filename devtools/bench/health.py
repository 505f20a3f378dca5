"""`scripts/bench health`: /healthz and /metrics latency (p50/p99/max) of every daemon at full load.

1. pair: `ddc ingress` (UDP source) → `ddc egress` (UDP sink) blasted with 200-byte records as
   fast as the blaster goes (no rate limit), and a `ddc supervise` polling that pair every 0.2 s;
2. dedup: `ddc-dedup serve` (embedded Redis, file sink) under POST /v1/records batches from a
   load process as fast as it answers.

A prober thread in this process GETs /healthz and /metrics of each daemon in turn, one fresh
connection per request (as the supervisor and Prometheus do), and records each latency; a
request that gets no answer within --timeout counts at the timeout. The target is p99 < 100 ms.
The supervisor's own view follows: its polls by result, and the pauses it tried.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from dedup_service.embedded import EmbeddedRedis, free_port
from devtools.bench.common import Receiver, bench_pair, print_table, run_blaster
from devtools.bench.dedup import API_TOKEN, start_service
from devtools.harness import Daemon, Pair, Process, python_argv, write_toml

TARGET_P99 = 0.100
SIZE = 200
PATHS = ("/healthz", "/metrics")
LOAD_OPTIONS = {"--port": int, "--token": str, "--duration": float, "--batch": int, "--prefix": str}


# --- probing -------------------------------------------------------------------------------


def probe(port: int, path: str, timeout: float) -> tuple[float, bool]:
    """Seconds until the whole answer of GET `path` was read; (timeout, False) without one."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
        ok = response.status in (200, 503)  # a degraded /healthz is an answer too
    except (OSError, http.client.HTTPException):
        return timeout, False
    finally:
        connection.close()
    return time.perf_counter() - started, ok


class Prober:
    """GETs each path of each daemon every `interval` s until stop(), one thread per daemon (a
    stalled daemon does not thin out the others' samples); latencies per (daemon, path)."""

    def __init__(self, ports: dict[str, int], interval: float, timeout: float) -> None:
        self.ports, self.interval, self.timeout = ports, interval, timeout
        self.samples: dict[tuple[str, str], list[float]] = {
            (name, path): [] for name in ports for path in PATHS
        }
        self.failures: dict[tuple[str, str], int] = dict.fromkeys(self.samples, 0)
        self.halt = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(name,), daemon=True) for name in ports
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _run(self, name: str) -> None:
        while not self.halt.is_set():
            for path in PATHS:
                seconds, ok = probe(self.ports[name], path, self.timeout)
                self.samples[name, path].append(seconds)
                self.failures[name, path] += not ok
            self.halt.wait(self.interval)

    def stop(self) -> None:
        self.halt.set()
        for thread in self.threads:
            thread.join(self.timeout * len(PATHS) + 5)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def rows_of(prober: Prober, load: str) -> list[list[Any]]:
    rows = []
    for (name, path), samples in prober.samples.items():
        p99 = percentile(samples, 0.99)
        rows.append(
            [
                name,
                path,
                load,
                len(samples),
                prober.failures[name, path],
                1000 * percentile(samples, 0.5),
                1000 * p99,
                1000 * max(samples, default=0.0),
                "yes" if p99 < TARGET_P99 and not prober.failures[name, path] else "NO",
            ]
        )
    return rows


# --- phase 1: a blasted pair and its supervisor --------------------------------------------


def supervisor_config(work: Path, pair: Pair, port: int) -> Path:
    return write_toml(
        work / "supervisor.toml",
        {
            "supervisor": {
                "http_listen": f"127.0.0.1:{port}",
                "poll_interval": 0.2,
                "log_level": "WARNING",
            },
            # no token: a pause it decides on is refused (403) and counted, so the load goes on
            "supervisor.pairs": [
                {
                    "name": "bench",
                    "ingress": f"http://127.0.0.1:{pair.ingress_http}",
                    "egress": f"http://127.0.0.1:{pair.egress_http}",
                }
            ],
        },
    )


def pair_phase(args: argparse.Namespace, work: Path) -> tuple[list[list[Any]], dict[str, Any]]:
    receiver = Receiver(idle=60.0, timeout=args.duration + 120).start()
    pair = bench_pair(
        work,
        "health",
        "udp",
        {"envelope": "records", "send_buffer": "16MiB"},
        {"receive_buffer": "64MiB", "envelope": "records"},
        {"send_buffer": "16MiB"},
        receiver.port,
    )
    supervisor: Daemon | None = None
    try:
        pair.start()
        assert pair.ingress is not None and pair.egress is not None
        port = free_port()
        supervisor = Daemon(
            "supervise", supervisor_config(work, pair, port), port, work / "supervisor.log"
        ).start()
        prober = Prober(
            {"ingress": pair.ingress_http, "egress": pair.egress_http, "supervisor": port},
            args.interval,
            args.timeout,
        )
        prober.start()
        sent = run_blaster(("127.0.0.1", pair.source_port), SIZE, duration=args.duration)
        prober.stop()
        view = supervisor.metrics()
        egress = pair.egress.metrics()
        ingress = pair.ingress.metrics()
    finally:
        if supervisor is not None:
            supervisor.stop()
        pair.stop()
        received = receiver.stop()
    info = {
        "sent": sent["sent"],
        "delivered": received["count"],
        "delivery_rate": received["count"] / max(received["last"] - received["first"], 1e-6),
        "rate": sent["sent"] / max(sent["elapsed"], 1e-6),
        "egress_lost_packets": egress.get("ddc_egress_packets_lost_total", 0.0),
        "ingress_records": ingress.get("ddc_ingress_records_total", 0.0),
        "ingress_kernel_drops": ingress.get("ddc_ingress_source_kernel_drops_total", 0.0),
        "egress_delivered": egress.get("ddc_egress_records_delivered_total", 0.0),
        "polls": {k: v for k, v in view.items() if k.startswith("ddc_supervisor_polls_total{")},
        "actions": view.get("ddc_supervisor_actions_total", 0.0),
    }
    return rows_of(prober, f"blast {SIZE} B"), info


# --- phase 2: the dedup service under /v1/records ------------------------------------------


def load_records(port: int, token: str, duration: float, batch: int, prefix: str) -> int:
    """POST /v1/records batches of `batch` new 200-byte records for `duration` s; prints totals."""
    value = base64.b64encode(os.urandom(SIZE)).decode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    sent = posts = 0
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        records = [{"id": f"{prefix}-{sent + i}", "value": value} for i in range(batch)]
        body = json.dumps({"link": "a", "records": records}).encode()
        connection.request("POST", "/v1/records", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"/v1/records answered {response.status}: {answer[:200]!r}")
        sent, posts = sent + batch, posts + 1
    print(json.dumps({"records": sent, "posts": posts}), flush=True)
    return 0


def dedup_phase(args: argparse.Namespace, work: Path) -> tuple[list[list[Any]], dict[str, Any]]:
    token = API_TOKEN  # start_service writes it as the service's api_token_file
    with EmbeddedRedis(data_dir=work / "redis") as redis_server:
        service = start_service(
            work,
            {
                "redis_url": redis_server.url,
                "key_prefix": f"h{os.getpid()}",
                "links": ["a"],
            },
            {"type": "file", "path": str(work / "dedup-out.bin")},
        )
        try:
            prober = Prober({"dedup": service.port}, args.interval, args.timeout)
            loaders = [
                Process(
                    f"load-{index}",
                    python_argv(
                        "devtools.bench.health",
                        "load",
                        "--port",
                        str(service.port),
                        "--token",
                        token,
                        "--duration",
                        str(args.duration),
                        "--batch",
                        str(args.batch),
                        "--prefix",
                        f"c{index}",
                    ),
                    work,
                ).start()
                for index in range(args.clients)
            ]
            prober.start()
            started = time.monotonic()
            failed = [loader.name for loader in loaders if loader.reap(args.duration + 120) != 0]
            if failed:  # a table of probes against an idle service would measure nothing
                raise SystemExit(f"load process {failed[0]} failed: see {work}/{failed[0]}.log")
            elapsed = time.monotonic() - started
            prober.stop()
            records = service.metric("ddc_dedup_records_received_total")
        finally:
            service.stop(15)
    return rows_of(prober, f"/v1/records x{args.clients}"), {
        "records": records,
        "rate": records / max(elapsed, 1e-6),
    }


# --- entry point ---------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench health", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command")
    load = sub.add_parser("load", help=argparse.SUPPRESS)
    for option, kind in LOAD_OPTIONS.items():
        load.add_argument(option, type=kind, required=True)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per phase")
    parser.add_argument("--interval", type=float, default=0.05, help="pause between probe rounds")
    parser.add_argument("--timeout", type=float, default=5.0, help="probe timeout (s)")
    parser.add_argument("--clients", type=int, default=2, help="/v1/records load processes")
    parser.add_argument("--batch", type=int, default=1000, help="records per /v1/records POST")
    parser.add_argument("--only", choices=["pair", "dedup"], help="run one phase")
    args = parser.parse_args(argv)
    if args.command == "load":
        return load_records(args.port, args.token, args.duration, args.batch, args.prefix)
    work = Path(tempfile.mkdtemp(prefix="ddc-bench-health-"))
    rows: list[list[Any]] = []
    if args.only in (None, "pair"):
        pair_rows, info = pair_phase(args, work)
        rows += pair_rows
        print(
            f"pair: blasted {info['sent']:,} records ({info['rate']:,.0f}/s offered; delivered "
            f"at {info['delivery_rate']:,.0f}/s, first to last at the receiver), "
            f"{info['delivered']:,} delivered, egress lost packets {info['egress_lost_packets']:.0f}"
        )
        print(
            f"  read by the ingress {info['ingress_records']:,.0f} (its socket dropped "
            f"{info['ingress_kernel_drops']:,.0f}), delivered by the egress "
            f"{info['egress_delivered']:,.0f}; the rest: the receiver's socket"
        )
        polls = ", ".join(f"{k.split('{', 1)[1][:-1]}: {v:.0f}" for k, v in info["polls"].items())
        print(f"supervisor polls: {polls}; pause/resume attempts: {info['actions']:.0f}")
    if args.only in (None, "dedup"):
        dedup_rows, info = dedup_phase(args, work)
        rows += dedup_rows
        print(f"dedup: {info['records']:,.0f} records received ({info['rate']:,.0f}/s)")
    print()
    print_table(
        ["daemon", "path", "load", "probes", "failed", "p50 ms", "p99 ms", "max ms", "p99<100ms"],
        rows,
    )
    print(f"\n(probe timeout {args.timeout:g} s counts as the latency; logs in {work})")
    return 0 if all(row[-1] == "yes" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
