"""UdpSocket.recv_run(pause): datagrams a moment apart are read on few wake-ups, none lost."""

import threading

import gevent

from ddc.netio import UdpSocket
from tests.unit.test_udp_source import blast

COUNT = 2000


def receive(pause):
    udp = UdpSocket.bound(("127.0.0.1", 0), 4 * 1024**2)
    hub = gevent.get_hub()
    waits = []
    wait = hub.wait
    hub.wait = lambda watcher: (waits.append(1), wait(watcher))[1]
    try:
        sender = threading.Thread(target=blast, args=(udp.getsockname(), COUNT, 50e-6))
        sender.start()
        got = []
        with gevent.Timeout(30):
            while len(got) < COUNT:
                got += udp.recv_run(pause)[0]
        sender.join(10)
    finally:
        del hub.wait
        udp.close()
    return got, len(waits)


def test_a_pause_reads_datagrams_a_moment_apart_on_few_wake_ups():
    got, waits = receive(0.001)
    assert got == [b"%08d" % i for i in range(COUNT)]
    assert waits < COUNT / 5, f"{waits} wake-ups for {COUNT} datagrams"
