"""`scripts/bench udp_receive`: CPU per datagram of the two UDP receive loops, pause against none.

At moderate rates a receiver that keeps up wakes once per datagram (the hub's poll, two greenlet
switches), which costs more than reading it. Both receive loops therefore look at an emptied
socket again a moment later before they wait for it: the ingress's UDP source
(`ddc.ingress.sources.udp`, COALESCE after a small read) and the egress's receiver
(`UdpSocket.recv_run(pause)`, RECEIVE_PAUSE). This offers each loop --records datagrams at a
paced rate from a sender process and prints the receiving process's CPU (user + system) per
datagram with the pause and without it (the baseline), alternated, in the same run, and their
ratio. Nothing else runs in the receiving process, so the figure is the loop's own cost on an
otherwise idle machine, the case where the wake-ups dominate.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import gevent

from ddc.egress import receiver
from ddc.ingress.sources import udp
from ddc.metrics import IngressMetrics
from ddc.netio import UdpSocket
from devtools.harness import child_env, python_argv

RECEIVE_BUFFER = 8 * 1024**2


def send(port: int, rate: float, count: int, size: int) -> int:
    """`count` datagrams of `size` bytes to 127.0.0.1:port at `rate` a second."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"x" * size
    start = time.perf_counter()
    for index in range(count):
        due = start + index / rate
        while (left := due - time.perf_counter()) > 0:
            if left > 0.0005:
                time.sleep(left - 0.0003)
        sender.sendto(payload, ("127.0.0.1", port))
    return 0


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def offered(port: int, rate: float, count: int, size: int, received: Callable[[], int]) -> float:
    """Runs a sender process and waits until `count` datagrams arrived (or 10 s after it ended);
    this process's CPU seconds per datagram received meanwhile."""
    argv = python_argv("devtools.bench", "udp_receive", "send", str(port))
    argv += [str(rate), str(count), str(size)]
    before = cpu_seconds()
    sender = subprocess.Popen(argv, env=child_env())
    ended = None
    while received() < count:
        if ended is None and sender.poll() is not None:
            ended = time.monotonic()
        if ended is not None and time.monotonic() - ended > 10:
            raise SystemExit(f"only {received():,} of {count:,} datagrams arrived")
        gevent.sleep(0.05)
    sender.wait()
    return (cpu_seconds() - before) / count


def ingress_source(rate: float, count: int, pause: bool) -> float:
    got = [0]

    def submit(batch: object, _done: object) -> None:
        got[0] += len(batch)  # type: ignore[arg-type]

    saved = udp.COALESCE_BELOW
    udp.COALESCE_BELOW = saved if pause else 0
    source = udp.UdpSource(
        {"listen": ("127.0.0.1", 0), "receive_buffer": RECEIVE_BUFFER}, submit, IngressMetrics()
    )
    source.start()
    assert source.udp is not None
    runner = gevent.spawn(source.run)
    try:
        return offered(source.udp.getsockname()[1], rate, count, 200, lambda: got[0])
    finally:
        runner.kill()
        source.close(1.0)
        udp.COALESCE_BELOW = saved


def egress_receive(rate: float, count: int, pause: bool) -> float:
    udp_socket = UdpSocket.bound(("127.0.0.1", 0), RECEIVE_BUFFER)
    got = [0]

    def loop() -> None:
        while True:
            got[0] += len(udp_socket.recv_run(receiver.RECEIVE_PAUSE if pause else 0.0)[0])

    runner = gevent.spawn(loop)
    try:
        return offered(udp_socket.getsockname()[1], rate, count, 1472, lambda: got[0])
    finally:
        runner.kill()
        udp_socket.close()


def main(argv: list[str]) -> int:
    if argv[:1] == ["send"]:
        return send(int(argv[1]), float(argv[2]), int(argv[3]), int(argv[4]))
    parser = argparse.ArgumentParser(
        prog="scripts/bench udp_receive", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rate", type=float, default=20_000, help="datagrams/s to the ingress")
    parser.add_argument("--egress-rate", type=float, default=4_000, help="datagrams/s (1,472 B)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds of each")
    args = parser.parse_args(argv)
    loops = (
        ("ingress UDP source, 200 B", ingress_source, args.rate),
        ("egress receiver, 1,472 B", egress_receive, args.egress_rate),
    )
    print(f"CPU per datagram received, {args.seconds:g} s per measurement, {os.cpu_count()} CPUs:")
    for name, measure, rate in loops:
        count = int(rate * args.seconds)
        for round_ in range(args.rounds):
            without = measure(rate, count, False)
            with_pause = measure(rate, count, True)
            print(
                f"  {name} at {rate:,.0f}/s, round {round_}: pause {1e6 * with_pause:6.2f} us, "
                f"none {1e6 * without:6.2f} us (baseline), ratio {with_pause / without:.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
