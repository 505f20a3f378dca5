"""UDP GRO on the egress socket (ddc/netio.py `recv_run`): a run of datagrams the kernel hands
over in one buffer comes out as the same datagrams, each its own bytes object, in order."""

from __future__ import annotations

import os
import socket
import struct

from ddc import netio
from ddc.ingress import gso


def gro_pair() -> tuple[netio.UdpSocket, socket.socket]:
    receiver = netio.UdpSocket.bound(("127.0.0.1", 0), 8 << 20)
    assert receiver.enable_gro()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.connect(receiver.getsockname())
    return receiver, sender


def test_a_gso_send_comes_out_as_its_datagrams_from_one_receive() -> None:
    receiver, sender = gro_pair()
    datagrams = [os.urandom(1472) for _ in range(40)] + [os.urandom(300)]
    sender.sendmsg(datagrams, gso.segment_control(1472))
    sender.send(b"alone")
    got, address = receiver.recv_run()
    assert got == datagrams  # one buffer on loopback: the kernel kept the GSO run together
    assert all(type(d) is bytes for d in got)
    assert address == sender.getsockname()
    assert receiver.recv_run() == ([b"alone"], sender.getsockname())
    assert receiver.truncated == 0
    receiver.close()
    sender.close()


def test_a_buffer_without_the_control_message_is_one_datagram() -> None:
    data = os.urandom(3000)
    assert netio.split_run(data, []) == [data]
    control = struct.pack("=i", 1000)
    assert netio.split_run(data, [(netio.SOL_UDP, netio.UDP_GRO, control)]) == [
        data[:1000],
        data[1000:2000],
        data[2000:],
    ]
    # a segment size not smaller than the buffer: a single datagram
    assert netio.split_run(data[:1000], [(netio.SOL_UDP, netio.UDP_GRO, control)]) == [data[:1000]]


def test_a_cut_run_loses_only_its_incomplete_last_datagram(caplog) -> None:
    receiver = netio.UdpSocket.bound(("127.0.0.1", 0))
    run = [b"a" * 10, b"b" * 10, b"c" * 4]
    receiver._truncated(run)
    assert run == [b"a" * 10, b"b" * 10] and receiver.truncated == 1
    assert "gro_max_size" in caplog.text
    whole = [b"a" * 10, b"b" * 10]  # cut right after a datagram: nothing of it is incomplete
    receiver._truncated(whole)
    assert whole == [b"a" * 10, b"b" * 10] and receiver.truncated == 2
    receiver.close()
