"""`ddc diode-sim` as a real process on loopback: exact counts over HTTP and on exit, CLI errors."""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from ddc.netio import set_receive_buffer
from dedup_service.embedded import free_port
from devtools.harness import wait_until
from tests.integration.streams import drain

SEQ = struct.Struct(">Q")  # first byte 0: never mistaken for a DDC message type


def start_sim(*options: str) -> tuple[subprocess.Popen, int, str]:
    """A diode-sim process with --http; (process, UDP listen port, HTTP base URL)."""
    port, http = free_port(socket.SOCK_DGRAM), free_port()
    command = [sys.executable, "-m", "ddc.cli", "diode-sim", "--listen", f"127.0.0.1:{port}"]
    command += [*options, "--http", f"127.0.0.1:{http}"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{http}"

    def started() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"diode-sim exited: {process.stderr.read()}")
        try:
            return bool(healthz(base))
        except OSError:
            return False

    try:
        wait_until(started, 15, message="diode-sim to answer /healthz")
    except AssertionError as exc:
        process.kill()
        raise RuntimeError(f"{exc}; its stderr: {process.stderr.read()}") from None
    return process, port, base


def healthz(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
        return json.loads(response.read())


def udp_socket(receive_buffer: int = 32 * 1024**2) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    set_receive_buffer(sock, receive_buffer)  # a whole test's datagrams may wait here
    sock.bind(("127.0.0.1", 0))
    return sock


def stop(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=10)
    return process.returncode, err


@dataclass
class SimRun:
    """A diode-sim process forwarding to `receiver`; `sender` sends to it on `port`.
    code and stderr: its exit once the `relaying` block ended (SIGTERM)."""

    receiver: socket.socket
    sender: socket.socket
    port: int
    base: str
    code: int | None = None
    err: str = ""


@contextmanager
def relaying(*options: str) -> Iterator[SimRun]:
    """A diode-sim with `options` forwarding to a fresh UDP receiver; stopped (SIGTERM) and its
    sockets closed when the block ends."""
    receiver, sender = udp_socket(), udp_socket()
    forward = f"127.0.0.1:{receiver.getsockname()[1]}"
    process, port, base = start_sim("--forward", forward, *options)
    run = SimRun(receiver, sender, port, base)
    try:
        yield run
    finally:
        run.code, run.err = stop(process)
        receiver.close()
        sender.close()


def final_counters(stderr: str) -> dict[str, int]:
    line = [text for text in stderr.splitlines() if text.startswith("diode-sim final: ")][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_loss_one_percent_seed_7_drops_exactly_what_it_counts():
    count = 5000
    with relaying("--loss", "0.01", "--seed", "7") as run:
        receiver, sender, port, base = run.receiver, run.sender, run.port, run.base
        for index in range(count):
            sender.sendto(SEQ.pack(index) + b"d" * 100, ("127.0.0.1", port))
            if index % 100 == 99:
                time.sleep(0.005)  # stay far below what the relay can take
        got = [SEQ.unpack_from(d)[0] for d in drain(receiver, count)]
        counters = healthz(base)
        sender.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sender.recv(65536)  # the simulator never sends anything toward the sender
    code, err = run.code, run.err
    rng = random.Random(7)
    expected_drops = {index for index in range(count) if rng.random() < 0.01}
    assert counters["receive_buffer_drops"] == 0
    assert counters["received"] == count
    assert counters["dropped_loss"] == counters["dropped"] == len(expected_drops) > 0
    assert len(got) == counters["forwarded"] == count - counters["dropped_loss"]
    assert set(range(count)) - set(got) == expected_drops
    assert code == 0
    final = final_counters(err)
    assert (final["received"], final["forwarded"], final["dropped_loss"]) == (
        count,
        len(got),
        len(expected_drops),
    )


def test_rate_cap_buffer_overflow_and_periodic_stats():
    options = ("--rate", "800kbit", "--buffer", "50kB", "--stats-interval", "0.2", "--seed", "1")
    with relaying(*options) as run:
        receiver, sender, port, base = run.receiver, run.sender, run.port, run.base
        for _ in range(30):
            sender.sendto(b"r" * 10_000, ("127.0.0.1", port))
        got = drain(receiver, 30, idle=0.6)  # 100 kB/s: one 10 kB datagram per 0.1 s
        counters = healthz(base)
        time.sleep(0.3)
    code, err = run.code, run.err
    assert counters["received"] == 30
    assert counters["dropped_overflow"] > 0
    assert counters["queued"] == 0
    assert len(got) == counters["forwarded"] == 30 - counters["dropped_overflow"]
    assert code == 0
    periodic = [line for line in err.splitlines() if line.startswith("diode-sim: ")]
    assert periodic and "dropped_overflow=" in periodic[-1]
    assert final_counters(err)["dropped_overflow"] == counters["dropped_overflow"]


@pytest.mark.parametrize(
    "options, named",
    [
        (["--forward", "127.0.0.1:9", "--loss", "1.5"], "--loss"),
        (["--forward", "127.0.0.1:9", "--burst-loss", "0.1"], "--burst-loss"),
        (["--forward", "nowhere"], "--forward"),
        (["--forward", "127.0.0.1:9", "--rate", "fast"], "--rate"),
    ],
)
def test_bad_options_exit_2_naming_the_option(options, named):
    result = subprocess.run(
        [sys.executable, "-m", "ddc.cli", "diode-sim", "--listen", "127.0.0.1:0", *options],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert named in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("which", ["listen", "http"])
def test_a_port_in_use_exits_2_naming_the_option(which):
    busy = udp_socket() if which == "listen" else socket.create_server(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    listen = port if which == "listen" else free_port(socket.SOCK_DGRAM)
    command = [sys.executable, "-m", "ddc.cli", "diode-sim"]
    command += ["--listen", f"127.0.0.1:{listen}", "--forward", "127.0.0.1:9"]
    if which == "http":
        command += ["--http", f"127.0.0.1:{port}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    finally:
        busy.close()
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"config error: {which}: cannot bind")
