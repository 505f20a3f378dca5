"""The UDP source on a real loopback socket: datagrams that arrive one behind another are read
many per wake-up, and none is lost or held back by the pause between reads."""

import socket
import threading
import time

import gevent

from ddc.ingress.sources.udp import UdpSource
from ddc.metrics import IngressMetrics

COUNT = 2000


def blast(address, count, gap):
    """`count` numbered datagrams, about `gap` seconds apart, from a real thread."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        start = time.perf_counter()
        for index in range(count):
            while time.perf_counter() < start + index * gap:
                pass
            sender.sendto(b"%08d" % index, address)


def run_source(count, gap):
    batches: list[list[bytes]] = []
    source = UdpSource(
        {"listen": ("127.0.0.1", 0), "receive_buffer": 4 * 1024**2},
        lambda batch, _done: batches.append(list(batch)),
        IngressMetrics(),
    )
    source.start()
    runner = gevent.spawn(source.run)
    sender = threading.Thread(target=blast, args=(source.udp.getsockname(), count, gap))
    sender.start()
    deadline = time.monotonic() + 30
    while sum(map(len, batches)) < count and time.monotonic() < deadline:
        gevent.sleep(0.01)
    sender.join(10)
    source.stop()
    runner.kill()
    source.close(1.0)
    return batches


def test_datagrams_a_moment_apart_are_read_many_per_wake_up_none_lost():
    batches = run_source(COUNT, 50e-6)  # 20,000 datagrams/s
    got = [datagram for batch in batches for datagram in batch]
    assert got == [b"%08d" % i for i in range(COUNT)]
    # one wake-up per datagram before: read as they came, each batch held one
    assert len(batches) < COUNT / 5, f"{len(batches)} reads for {COUNT} datagrams"
