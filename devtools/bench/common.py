"""Helpers the benchmarks share: UDP blaster and receiver processes, peak RSS, tables, rate search.

The blaster and the receiver are plain (non-gevent) Python processes with tight socket loops,
run as `python -m devtools.bench.common blast|receive ...`; a blast straight from one to the other is
the raw baseline every UDP benchmark compares against.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ddc.netio import set_receive_buffer, set_send_buffer
from devtools.harness import Pair, child_env, python_argv

BLAST_BATCH_SECONDS = 0.001  # pacing granularity of the blaster


# --- processes -----------------------------------------------------------------------------


def bench_process(*args: str) -> subprocess.Popen[str]:
    """`python -m devtools.bench.common args...`, its stdout a pipe of text lines."""
    argv = python_argv("devtools.bench.common", *args)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=child_env())


def peak_rss(pid: int) -> int:
    """Peak resident set size of a live process in bytes (VmHWM on Linux, else current RSS)."""
    process = psutil.Process(pid)
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return process.memory_info().rss


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def runqueue_seconds(pid: int) -> float:
    """Seconds the threads of a live process spent runnable but waiting for a CPU (the second
    field of Linux's /proc/PID/task/TID/schedstat; 0.0 where it is not available). A process
    far from 100 % CPU may still be starved: on an oversubscribed machine it waits here."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
                total += int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended, or no schedstats
    return total / 1e9


@dataclass(frozen=True)
class Scenario:
    """One case a bench measures: `key` names it on the command line, `title` in the report."""

    key: str
    title: str


def bench_pair(
    workdir: Path,
    name: str,
    sink: str,
    transport: dict[str, Any],
    egress_transport: dict[str, Any],
    sink_options: dict[str, Any],
    sink_port: int | None = None,
) -> Pair:
    """An ingress (UDP source, 64 MiB receive buffer) and its egress for a bench: warnings-only
    logs, the default heartbeat timing."""
    return Pair(
        workdir,
        name,
        source="udp",
        sink=sink,
        ingress={"log_level": "WARNING"},
        egress={"log_level": "WARNING"},
        source_options={"receive_buffer": "64MiB"},
        transport=transport,
        egress_transport=egress_transport,
        sink_options=sink_options,
        sink_port=sink_port,
        fast_heartbeats=False,
    )


# --- blaster and receiver ------------------------------------------------------------------


def blast(
    target: tuple[str, int],
    size: int,
    *,
    count: int | None = None,
    duration: float | None = None,
    rate: float | None = None,
) -> dict[str, Any]:
    """Send `size`-byte datagrams to `target` until `count` or `duration`; rate in bytes/s.

    Pacing is by batches of about a millisecond, so the loop between sleeps is a bare send().
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    set_send_buffer(sock, 8 * 1024**2)
    sock.connect(target)
    send = sock.send
    payload = memoryview(os.urandom(size))
    per_second = rate / max(size, 1) if rate else None
    batch = max(1, int(per_second * BLAST_BATCH_SECONDS)) if per_second else 64
    limit = count if count is not None else math.inf
    deadline = time.monotonic() + duration if duration is not None else math.inf
    sent = errors = 0
    start = time.monotonic()
    while sent < limit:
        for _ in range(int(min(batch, limit - sent))):
            try:
                send(payload)
                sent += 1
            except OSError:
                errors += 1
        now = time.monotonic()
        if now >= deadline:
            break
        if per_second:
            ahead = start + sent / per_second - now
            if ahead > 0:
                time.sleep(ahead)
    elapsed = time.monotonic() - start
    sock.close()
    return {
        "sent": sent,
        "bytes": sent * size,
        "errors": errors,
        "start": start,
        "elapsed": elapsed,
    }


def receive(
    sock: socket.socket,
    *,
    expect: int | None = None,
    idle: float = 1.0,
    timeout: float = 600.0,
    ready: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Count datagrams on `sock` until `expect` arrived, `idle` s of silence after the first
    one, `timeout`, or SIGTERM."""
    stop = {"now": False}

    def on_term(*_: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    sock.setblocking(False)
    recv_into = sock.recv_into
    buffer = bytearray(65536)
    count = total = 0
    first = last = 0.0
    deadline = time.monotonic() + timeout
    if ready:
        ready()
    seen = 0
    while not stop["now"]:
        try:
            total += recv_into(buffer)
        except BlockingIOError:
            now = time.monotonic()
            if count != seen:  # drained what had arrived: the last datagram came just now
                seen, last = count, now
            if now > deadline or (count and now - last > idle):
                break
            select.select([sock], [], [], 0.05)
            continue
        count += 1
        if count == 1:
            first = time.monotonic()
        if count == expect:
            last = time.monotonic()
            break
    end = time.monotonic()
    return {"count": count, "bytes": total, "first": first, "last": last or end, "end": end}


@dataclass
class Receiver:
    """A receiver process bound to a fresh UDP port."""

    expect: int | None = None
    idle: float = 1.0
    timeout: float = 600.0
    process: subprocess.Popen | None = None
    port: int = 0
    result: dict[str, Any] = field(default_factory=dict)

    def start(self) -> Receiver:
        args = ["receive", "--idle", str(self.idle), "--timeout", str(self.timeout)]
        if self.expect is not None:
            args += ["--expect", str(self.expect)]
        self.process = bench_process(*args)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("receiver did not start")
        self.port = json.loads(line)["port"]
        return self

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        assert self.process is not None
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            out, _ = self.process.communicate(timeout=10)
        self.result = json.loads(out.strip().splitlines()[-1])
        return self.result

    def stop(self) -> dict[str, Any]:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
        return self.wait(10)


def run_blaster(target: tuple[str, int], size: int, **bounds: float | None) -> dict[str, Any]:
    """blast() from a separate process (its count, duration and rate as keywords); its result."""
    args = ["blast", "--target", f"{target[0]}:{target[1]}", "--size", str(size)]
    for name, value in bounds.items():
        if value is not None:
            args += [f"--{name}", str(value)]
    process = bench_process(*args)
    out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"blaster exited with code {process.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def raw_baseline(size: int, duration: float, rate: float | None = None) -> dict[str, Any]:
    """Blaster → receiver, no DDC in between: what plain Python UDP moves on this machine."""
    receiver = Receiver(idle=1.0, timeout=duration + 30).start()
    sent = run_blaster(("127.0.0.1", receiver.port), size, duration=duration, rate=rate)
    received = receiver.wait(timeout=duration + 30)
    return summarize(sent, received, size)


def summarize(sent: dict[str, Any], received: dict[str, Any], size: int) -> dict[str, Any]:
    """Delivered throughput measured at the receiver, and loss against what was sent."""
    span = max(received["last"] - received["first"], 1e-6)
    count = received["count"]
    return {
        "sent": sent["sent"],
        "delivered": count,
        "lost": sent["sent"] - count,
        "loss_ratio": (sent["sent"] - count) / sent["sent"] if sent["sent"] else 0.0,
        "mb_per_s": received["bytes"] / span / 1e6 if count > 1 else 0.0,
        "records_per_s": count / span if count > 1 else 0.0,
        "offered_mb_per_s": sent["bytes"] / max(sent["elapsed"], 1e-6) / 1e6,
        "size": size,
    }


# --- output ---------------------------------------------------------------------


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], file: Any = None) -> None:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = file or sys.stdout
    for index, row in enumerate(cells):
        print(
            "  ".join(value.rjust(width) for value, width in zip(row, widths, strict=True)),
            file=out,
        )
        if index == 0:
            print("  ".join("-" * width for width in widths), file=out)
    out.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def mib(value: float) -> float:
    return value / 1024**2


# --- process entry points ------------------------------------------------------------------


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.common")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("blast", help="send datagrams as fast as allowed")
    b.add_argument("--target", type=_hostport, required=True)
    b.add_argument("--size", type=int, required=True)
    b.add_argument("--count", type=int)
    b.add_argument("--duration", type=float)
    b.add_argument("--rate", type=float, help="bytes/s of payload (default: unpaced)")
    r = commands.add_parser("receive", help="count datagrams; prints the port, then the result")
    r.add_argument("--listen", type=_hostport, default=("127.0.0.1", 0))
    r.add_argument("--expect", type=int)
    r.add_argument("--idle", type=float, default=1.0)
    r.add_argument("--timeout", type=float, default=600.0)
    r.add_argument("--receive-buffer", type=int, default=64 * 1024**2)
    args = parser.parse_args(argv)
    if args.command == "blast":
        if args.count is None and args.duration is None:
            parser.error("blast needs --count or --duration")
        result = blast(
            args.target, args.size, count=args.count, duration=args.duration, rate=args.rate
        )
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        set_receive_buffer(sock, args.receive_buffer)
        sock.bind(args.listen)

        def ready() -> None:
            print(json.dumps({"port": sock.getsockname()[1]}), flush=True)

        result = receive(
            sock, expect=args.expect, idle=args.idle, timeout=args.timeout, ready=ready
        )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
