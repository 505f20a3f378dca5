"""`scripts/bench latency`: end-to-end latency of a pair, source socket to sink socket.

A sender process writes 200-byte records into the ingress's UDP source at a steady rate, each
stamped with its index and `time.monotonic_ns()` (CLOCK_MONOTONIC: one clock for every process
on the host); a receiver process reads the egress's UDP sink and records, per record, arrival
time minus stamp. The pair (`ddc ingress` → `ddc egress`) runs in its own two processes, so the
four parts share no interpreter. Per scenario and rate it prints p50, p99 and max in ms, the
records lost, and p99 against the records envelope's p99 measured in the same run (what FEC
adds), and the CPU % of the ingress and the egress over the run with the load average after it
(on a shared machine, latency follows the CPU the pair gets). The first `--warmup` seconds are
not counted (process start, first group joins). `--fec-linger-ms` sets the FEC scenario's
`fec_linger_ms`; `--loss P` puts `ddc diode-sim --loss P` between ingress and egress (what FEC's
repair wait costs: packets behind a lost one wait for the group's parity). `--rounds N` repeats
the scenarios N times in turn (records, then records with FEC, right after each other: the two
see the same load) and ends with what FEC added to p99 in each round and their median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddc.netio import set_receive_buffer, set_send_buffer
from devtools.bench.common import Scenario as BenchScenario
from devtools.bench.common import cpu_seconds, print_table
from devtools.harness import DDC, Pair, Process, child_env, free_port, python_argv

STAMP = struct.Struct("<QQ")  # index, monotonic ns at send
RECORD_SIZE = 200


@dataclass(frozen=True)
class Scenario(BenchScenario):
    envelope: str
    fec: tuple[int, int] | None = None
    max_packet_size: int = 1472


SCENARIOS = [
    Scenario("raw", "raw envelope", "raw"),
    Scenario("records", "records envelope", "records"),
    Scenario("records+fec", "records envelope, FEC 32+8", "records", (32, 8)),
]


# --- the two measuring processes -----------------------------------------------------------


def send(port: int, rate: float, seconds: float) -> dict[str, Any]:
    """Stamped records to 127.0.0.1:port at `rate` per second for `seconds`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    set_send_buffer(sock, 4 * 1024**2)
    sock.connect(("127.0.0.1", port))
    padding = bytes(RECORD_SIZE - STAMP.size)
    total = int(rate * seconds)
    start = time.monotonic()
    for index in range(total):
        due = start + index / rate
        ahead = due - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        sock.send(STAMP.pack(index, time.monotonic_ns()) + padding)
    sock.close()
    return {"sent": total}


def receive(sock: socket.socket, expect: int, warmup: int, idle: float) -> dict[str, Any]:
    """Latencies in ms of records index >= warmup, until `expect` arrived or `idle` s pass."""
    sock.settimeout(60.0)  # the pair may take a while to start
    latencies: list[float] = []
    seen: set[int] = set()
    while len(seen) < expect:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        now = time.monotonic_ns()
        sock.settimeout(idle)
        index, stamp = STAMP.unpack_from(data)
        if index in seen:
            continue
        seen.add(index)
        if index >= warmup:
            latencies.append((now - stamp) / 1e6)
    latencies.sort()
    return {"received": len(seen), "counted": len(latencies), "latencies": summary(latencies)}


def summary(sorted_ms: list[float]) -> dict[str, float | None]:
    if not sorted_ms:
        return {"p50": None, "p99": None, "max": None}

    def at(fraction: float) -> float:
        return sorted_ms[min(len(sorted_ms) - 1, int(fraction * len(sorted_ms)))]

    return {"p50": at(0.50), "p99": at(0.99), "max": sorted_ms[-1]}


# --- one trial -----------------------------------------------------------------------------


def start_sim(workdir: Path, pair: Pair, loss: float) -> Process:
    """`ddc diode-sim` between the pair's ingress and egress, dropping `loss` of the datagrams
    (seeded: every scenario loses the same draws)."""
    port, http = free_port(socket.SOCK_DGRAM), free_port()
    pair.destination_port = port
    argv = [*DDC, "diode-sim", "--listen", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{http}"]
    argv += ["--forward", f"127.0.0.1:{pair.link_port}", "--loss", str(loss), "--seed", "1"]
    sim = Process(f"{pair.name}-sim", argv, workdir, http_port=http)
    sim.start(15)
    return sim


def trial(workdir: Path, scenario: Scenario, rate: float, args: argparse.Namespace) -> dict:
    seconds, warmup, fec_linger_ms = args.seconds, args.warmup, args.fec_linger_ms
    transport: dict[str, Any] = {
        "envelope": scenario.envelope,
        "max_packet_size": scenario.max_packet_size,
    }
    if scenario.fec:
        transport["fec_data"], transport["fec_parity"] = scenario.fec
        if fec_linger_ms is not None:
            transport["fec_linger_ms"] = fec_linger_ms
    receiver = subprocess.Popen(
        python_argv(
            "devtools.bench.latency",
            "_receive",
            "--expect",
            str(int(rate * seconds)),
            "--warmup",
            str(int(rate * warmup)),
        ),
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert receiver.stdout is not None
    sink_port = json.loads(receiver.stdout.readline())["port"]
    pair = Pair(
        workdir,
        f"lat-{scenario.key}-{int(rate)}",
        ingress={"log_level": "WARNING"},
        egress={"log_level": "WARNING"},
        transport=transport,
        egress_transport={"envelope": scenario.envelope},  # never guessed (issue 12)
        sink_port=sink_port,
        fast_heartbeats=False,
    )
    sim = start_sim(workdir, pair, args.loss) if args.loss else None
    try:
        pair.start()
        assert pair.ingress is not None and pair.egress is not None
        assert pair.ingress.process is not None and pair.egress.process is not None
        pids = (pair.ingress.process.pid, pair.egress.process.pid)
        cpu_before = [cpu_seconds(pid) for pid in pids]
        started = time.monotonic()
        sender = subprocess.run(
            python_argv(
                "devtools.bench.latency",
                "_send",
                "--port",
                str(pair.source_port),
                "--rate",
                str(rate),
                "--seconds",
                str(seconds),
            ),
            env=child_env(),
            check=True,
            capture_output=True,
            text=True,
        )
        sent = json.loads(sender.stdout)["sent"]
        out, _ = receiver.communicate(timeout=seconds + 60)
        result = json.loads(out.strip().splitlines()[-1])
        span = time.monotonic() - started
        result["cpu"] = [
            100 * (cpu_seconds(pid) - was) / span for pid, was in zip(pids, cpu_before, strict=True)
        ]
    finally:
        if receiver.poll() is None:
            receiver.kill()
        pair.stop()
        if sim is not None:
            sim.stop()
    result["sent"] = sent
    return result


def bench(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ddc-bench-latency-"))
    rows = []
    p99_records: dict[float, float | None] = {}
    added_by_rate: dict[float, list[float]] = {rate: [] for rate in args.rates}
    rounds = [(index, rate) for index in range(args.rounds) for rate in args.rates]
    try:
        for index, rate in rounds:
            for scenario in SCENARIOS:
                if args.scenario and scenario.key not in args.scenario:
                    continue
                result = trial(workdir, scenario, rate, args)
                stats = result["latencies"]
                if scenario.key == "records":
                    p99_records[rate] = stats["p99"]
                base = p99_records.get(rate)
                added = (
                    stats["p99"] - base
                    if scenario.fec and base is not None and stats["p99"] is not None
                    else None
                )
                if added is not None:
                    added_by_rate[rate].append(added)
                rows.append(
                    [
                        index + 1,
                        scenario.title,
                        f"{rate:g}/s",
                        result["sent"],
                        result["sent"] - result["received"],
                        stats["p50"],
                        stats["p99"],
                        stats["max"],
                        added,
                        result["cpu"][0],
                        result["cpu"][1],
                        os.getloadavg()[0],
                    ]
                )
                print(f"  {scenario.title} at {rate:g}/s: {stats}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"records of {RECORD_SIZE} B, source socket → sink socket, {args.seconds:g} s per run")
    print_table(
        [
            "round",
            "scenario",
            "rate",
            "sent",
            "lost",
            "p50 ms",
            "p99 ms",
            "max ms",
            "p99 vs records",
            "ingress CPU%",
            "egress CPU%",
            "load",
        ],
        rows,
    )
    for rate, added_ms in added_by_rate.items():
        if added_ms:
            print(
                f"FEC's p99 minus records' p99 at {rate:g}/s, per round: "
                f"{', '.join(f'{ms:+.1f}' for ms in added_ms)} ms; median "
                f"{statistics.median(added_ms):+.1f} ms"
            )
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench latency", description=__doc__)
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 10000.0])
    parser.add_argument("--seconds", type=float, default=6.0, help="sending time per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not counted")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run the scenarios this many times in turn"
    )
    parser.add_argument(
        "--scenario", action="append", choices=[s.key for s in SCENARIOS], help="repeatable"
    )
    parser.add_argument(
        "--loss",
        type=float,
        default=0.0,
        help="run every pair through `ddc diode-sim --loss P` (FEC repairs, the others lose)",
    )
    parser.add_argument(
        "--fec-linger-ms",
        type=float,
        help="fec_linger_ms of the FEC scenario (default: its default)",
    )
    return bench(parser.parse_args(argv))


def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["_send", "_receive"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--expect", type=int)
    parser.add_argument("--warmup", type=int, default=0)
    args = parser.parse_args(argv)
    if args.role == "_send":
        print(json.dumps(send(args.port, args.rate, args.seconds)))
        return 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    set_receive_buffer(sock, 16 * 1024**2)
    sock.bind(("127.0.0.1", 0))
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    print(json.dumps(receive(sock, args.expect, args.warmup, idle=5.0)))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
