"""DiodeSim in-process on loopback (gevent, no monkey patching): counts, seeded impairments."""

from __future__ import annotations

import errno
import random
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import gevent
import pytest
from gevent import socket as gsocket

from ddc.diode_sim.cli import config_from_args, configure_parser
from ddc.diode_sim.config import SimConfig
from ddc.diode_sim.counters import Counters
from ddc.diode_sim.relay import DiodeSim
from ddc.errors import ConfigError
from ddc.netio import set_receive_buffer
from devtools.diode_sim_thread import DiodeSimThread
from devtools.harness import wait_until

SEQ = struct.Struct(">Q")  # first byte 0: never mistaken for a DDC message type


class Peer:
    """A gevent UDP socket on loopback that collects what it receives."""

    def __init__(self) -> None:
        self.sock = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
        set_receive_buffer(self.sock, 32 * 1024**2)  # a whole test's datagrams may wait here
        self.sock.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.got: list[bytes] = []

    def collect(self, expect: int, idle: float = 0.3) -> list[bytes]:
        while len(self.got) < expect:
            with gevent.Timeout(idle, False):
                self.got.append(self.sock.recv(65536))
                continue
            break
        return self.got

    def pending(self, wait: float = 0.2) -> bool:
        with gevent.Timeout(wait, False):
            self.sock.recv(65536)
            return True
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peers():
    sender, receiver = Peer(), Peer()
    yield sender, receiver
    sender.close()
    receiver.close()


def make_sim(receiver: Peer, **options) -> DiodeSim:
    sim = DiodeSim(SimConfig(listen=("127.0.0.1", 0), forward=receiver.address, **options))
    sim.start()
    return sim


@contextmanager
def running_sim(receiver: Peer, **options) -> Iterator[DiodeSim]:
    """make_sim(), stopped (2 s to drain) when the block ends."""
    sim = make_sim(receiver, **options)
    try:
        yield sim
    finally:
        sim.stop(2)


def send_numbered(sender: Peer, target, count: int, size: int = 64, pace_every: int = 100) -> None:
    filler = b"x" * (size - SEQ.size)
    for index in range(count):
        sender.sock.sendto(SEQ.pack(index) + filler, target)
        if index % pace_every == pace_every - 1:
            gevent.sleep(0.001)


def numbers(datagrams: list[bytes]) -> list[int]:
    return [SEQ.unpack_from(d)[0] for d in datagrams]


def relay_numbered(
    peers: tuple[Peer, Peer], count: int, expect: int | None = None, **options
) -> tuple[list[int], dict]:
    """`count` numbered datagrams through a simulator with `options`: (the numbers received,
    waiting for `expect` of them (default `count`), the simulator's counters)."""
    sender, receiver = peers
    with running_sim(receiver, **options) as sim:
        send_numbered(sender, sim.address, count)
        got = numbers(receiver.collect(count if expect is None else expect))
        counters = sim.counters()
    return got, counters


def predicted_losses(seed: int, loss: float, count: int) -> set[int]:
    """Which datagrams a loss-only simulator drops: one draw per datagram (module docstring)."""
    rng = random.Random(seed)
    return {index for index in range(count) if rng.random() < loss}


def test_plain_relay_is_byte_identical_and_never_answers_the_sender(peers):
    sender, receiver = peers
    with running_sim(receiver) as sim:
        payloads = [bytes([i % 256]) * size for i, size in enumerate([0, 1, 9, 1472, 8972, 65507])]
        for payload in payloads:
            sender.sock.sendto(payload, sim.address)
        assert receiver.collect(len(payloads)) == payloads
        counters = sim.counters()
        assert counters["received"] == counters["forwarded"] == len(payloads)
        assert counters["received_bytes"] == counters["forwarded_bytes"] == sum(map(len, payloads))
        assert counters["dropped"] == 0
        assert not sender.pending(), "the simulator sent something back toward the sender"


def test_loss_drops_exactly_what_it_counts_and_follows_the_seed(peers):
    count = 5000
    got, counters = relay_numbered(peers, count, loss=0.01, seed=7)
    dropped = set(range(count)) - set(got)
    assert counters["received"] == count
    assert counters["dropped_loss"] == counters["dropped"] == len(dropped) > 0
    assert len(got) == counters["forwarded"] == count - counters["dropped_loss"]
    assert got == sorted(got)
    assert dropped == predicted_losses(7, 0.01, count)
    assert counters["dropped_by_type"] == {"other": len(dropped)}


def test_the_same_seed_drops_the_same_datagrams_and_another_seed_does_not(peers):
    runs = []
    for seed in (11, 11, 12):
        got, _ = relay_numbered(peers, 1000, loss=0.05, seed=seed)
        runs.append(set(got))
        peers[1].got.clear()
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_burst_loss_drops_runs_of_the_given_length(peers):
    count, length = 3000, 7
    got, counters = relay_numbered(peers, count, burst_loss=0.005, burst_length=length, seed=3)
    missing = sorted(set(range(count)) - set(got))
    assert counters["dropped_burst"] == len(missing) > 0
    runs, run = [], 1
    for previous, current in zip(missing, missing[1:], strict=False):
        if current == previous + 1:
            run += 1
        else:
            runs.append(run)
            run = 1
    runs.append(run)
    # back-to-back bursts merge into longer runs; a run shorter than LEN only at the very end
    assert all(r % length == 0 for r in runs[:-1])
    assert runs[-1] % length == 0 or missing[-1] == count - 1


def test_duplicates_are_counted_and_adjacent(peers):
    count = 2000
    got, counters = relay_numbered(peers, count, count * 2, duplicate=0.02, seed=5)
    repeats = sum(1 for a, b in zip(got, got[1:], strict=False) if a == b)
    assert counters["duplicated"] == repeats == len(got) - count > 0
    assert counters["forwarded"] == len(got)
    assert sorted(set(got)) == list(range(count))


def test_reorder_swaps_neighbours_and_counts_each_swap(peers):
    count = 2000
    got, counters = relay_numbered(peers, count, reorder=0.03, seed=9)
    assert sorted(got) == list(range(count))
    inversions = sum(1 for a, b in zip(got, got[1:], strict=False) if b < a)
    assert counters["reordered"] == inversions > 0
    assert counters["forwarded"] == count and counters["dropped"] == 0


def test_a_held_datagram_is_released_after_the_hold_time(peers):
    sender, receiver = peers
    with running_sim(receiver, reorder=1.0, reorder_hold=0.05, seed=1) as sim:
        sender.sock.sendto(b"lonely", sim.address)
        assert receiver.collect(1, idle=1.0) == [b"lonely"]
        assert sim.counters()["reordered"] == 0  # nothing overtook it


def test_rate_cap_overflows_its_buffer_and_counts_every_drop(peers):
    sender, receiver = peers
    size, count = 10_000, 60
    # 800 kbit/s = 100 kB/s behind a 100 kB buffer: a 600 kB burst cannot all fit
    with running_sim(receiver, rate=800_000, buffer=100_000, seed=1) as sim:
        for _ in range(count):
            sender.sock.sendto(b"r" * size, sim.address)
        started = gevent.get_hub().loop.now()
        receiver.collect(count, idle=0.5)
        elapsed = gevent.get_hub().loop.now() - started
        counters = sim.counters()
    assert counters["received"] == count
    assert counters["dropped_overflow"] > 0
    assert counters["forwarded"] + counters["dropped_overflow"] == count
    assert len(receiver.got) == counters["forwarded"]
    # what got in left at no more than the cap: ~10 datagrams of 10 kB at 100 kB/s ≈ 1 s
    assert elapsed >= 0.8 * (counters["forwarded"] - 1) * size / 100_000


def test_stop_forwards_or_counts_what_is_still_queued(peers):
    sender, receiver = peers
    sim = make_sim(receiver, rate=80_000, buffer=1_000_000, seed=1)  # 10 kB/s
    for _ in range(20):
        sender.sock.sendto(b"q" * 5000, sim.address)
    gevent.sleep(0.2)
    assert sim.counters()["queued"] > 0
    sim.stop(0.3)
    counters = sim.counters()
    assert counters["received"] == 20
    assert counters["dropped_shutdown"] > 0
    assert counters["forwarded"] + counters["dropped_shutdown"] == 20
    assert counters["queued"] == 0


def test_a_forward_address_nobody_listens_on_is_counted():
    sink = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    closed_port = sink.getsockname()
    sink.close()  # nothing listens there: the kernel answers with ICMP port unreachable
    sender = Peer()
    sim = DiodeSim(SimConfig(listen=("127.0.0.1", 0), forward=closed_port))
    sim.start()
    try:
        for _ in range(20):
            sender.sock.sendto(b"lost", sim.address)
            gevent.sleep(0.005)
        gevent.sleep(0.1)
        counters = sim.counters()
    finally:
        sim.stop(2)
        sender.close()
    assert counters["received"] == counters["forwarded"] == 20
    assert counters["forward_refused"] > 0
    assert counters["dropped"] == 0


class FailingSocket:
    """Unit-test stand-in for the forwarding socket: every third send fails with ENOBUFS."""

    def __init__(self, real) -> None:
        self.real = real
        self.calls = 0

    def send(self, data) -> int:
        self.calls += 1
        if self.calls % 3 == 0:
            raise OSError(errno.ENOBUFS, "No buffer space available")
        return self.real.send(data)

    def __getattr__(self, name):
        return getattr(self.real, name)


# any impairment, even one that never fires, selects the impaired relay path
@pytest.mark.parametrize("options", [{}, {"loss": 1e-12, "seed": 1}], ids=["plain", "impaired"])
def test_send_errors_drop_and_count_the_datagram(peers, options):
    sender, receiver = peers
    sim = make_sim(receiver, **options)
    sim._tx = FailingSocket(sim._tx)  # before the relay greenlet first runs
    try:
        send_numbered(sender, sim.address, 30)
        got = receiver.collect(30)
        counters = sim.counters()
    finally:
        sim.stop(2)
    assert counters["received"] == 30
    assert counters["dropped_send_error"] == 10
    assert counters["forwarded"] == len(got) == 20


def test_drops_are_classified_by_ddc_message_type():
    header = struct.Struct("<BIHH")
    counters = Counters()
    for datagram in [
        header.pack(1, 0, 0, 0),
        header.pack(2, 5, 0, 0),
        header.pack(3, 5, 3, 0) + b"abc",
        memoryview(header.pack(4, 6, 0, 0)),
        header.pack(5, 6, 0, 0),
        b"\x03short",
        header.pack(9, 0, 0, 0),
    ]:
        counters.drop("loss", datagram)
    assert counters.values()["dropped_by_type"] == {
        "startup": 1,
        "heartbeat": 1,
        "data_first": 1,
        "data": 1,
        "shutdown": 1,
        "other": 2,
    }
    assert counters.dropped == counters.dropped_loss == 7


@pytest.mark.parametrize(
    "options, key",
    [
        ({"loss": 1.5}, "loss"),
        ({"duplicate": -0.1}, "duplicate"),
        ({"burst_loss": 0.1, "burst_length": 0}, "burst_loss"),
        ({"rate": 0}, "rate"),
    ],
)
def test_invalid_settings_name_the_key(options, key):
    with pytest.raises(ConfigError) as info:
        SimConfig(listen=("127.0.0.1", 0), forward=("127.0.0.1", 9), **options)
    assert info.value.key == key


def test_command_line_options_map_to_the_config():
    import argparse

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(
        "--listen 127.0.0.1:0 --forward 127.0.0.1:7001 --loss 0.01 --burst-loss 0.001,20 "
        "--reorder 0.02 --duplicate 0.03 --rate 800Mbit --buffer 2MiB --seed 7 "
        "--stats-interval 2s --http 127.0.0.1:0".split()
    )
    config = config_from_args(args)
    assert (config.loss, config.burst_loss, config.burst_length) == (0.01, 0.001, 20)
    assert (config.reorder, config.duplicate, config.seed) == (0.02, 0.03, 7)
    assert config.rate == 800e6 and config.buffer == 2 * 1024**2
    assert config.stats_interval == 2.0 and config.http_listen == ("127.0.0.1", 0)
    for bad in (["--loss", "2"], ["--burst-loss", "0.1"], ["--rate", "fast"], ["--forward", "x"]):
        argv = ["--listen", "127.0.0.1:0", "--forward", "127.0.0.1:1", *bad]
        with pytest.raises(SystemExit) as info:
            parser.parse_args(argv)
        assert info.value.code == 2


def test_http_serves_the_counters(peers):
    import json
    import urllib.request

    sender, receiver = peers
    with running_sim(receiver, loss=0.5, seed=2, http_listen=("127.0.0.1", 0)) as sim:
        send_numbered(sender, sim.address, 200)
        receiver.collect(200)
        host, port = sim.http_address

        def get(path: str) -> bytes:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as response:
                return response.read()

        pool = gevent.get_hub().threadpool  # a real thread, so the hub keeps serving
        health = json.loads(pool.spawn(get, "/healthz").get())
        metrics = pool.spawn(get, "/metrics").get().decode()
    assert health["status"] == "ok" and health["seed"] == 2
    assert health["received"] == 200
    assert health["dropped_loss"] == 200 - len(receiver.got) > 0
    assert "ddc_diode_sim_packets_received_total 200.0" in metrics
    dropped = f'ddc_diode_sim_packets_dropped_total{{message_type="other",reason="loss"}} {health["dropped_loss"]}.0'
    assert dropped in metrics


def test_stop_relays_what_the_kernel_already_holds(peers):
    sender, receiver = peers
    sim = make_sim(receiver)
    for index in range(50):  # the relay greenlet has not run yet: all 50 wait in the kernel
        sender.sock.sendto(SEQ.pack(index), sim.address)
    sim.stop(2)
    counters = sim.counters()
    assert counters["received"] == counters["forwarded"] == 50
    assert numbers(receiver.collect(50)) == list(range(50))


def test_the_thread_wrapper_relays_for_callers_that_block():
    import socket
    import time

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024**2)  # 300 datagrams wait
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    config = SimConfig(listen=("127.0.0.1", 0), forward=receiver.getsockname(), loss=0.1, seed=4)
    try:
        with DiodeSimThread(config) as sim:
            for index in range(300):
                sender.sendto(SEQ.pack(index), sim.address)
                time.sleep(0.0005)  # blocks this thread, not the simulator's hub
            wait_until(lambda: sim.counters()["received"] >= 300, 5, interval=0.01)
            counters = sim.counters()
            got = [receiver.recv(100) for _ in range(counters["forwarded"])]
    finally:
        receiver.close()
        sender.close()
    assert counters["received"] == 300
    assert set(range(300)) - set(numbers(got)) == predicted_losses(4, 0.1, 300)
    assert not sim._thread.is_alive()
