"""The ingress Transport and the egress Receiver driven directly: no sockets, no greenlets."""

from __future__ import annotations

import struct
import time
from typing import Any
from unittest import mock

from ddc.egress import receiver as receiver_module
from ddc.egress.link import LinkState
from ddc.egress.receiver import Receiver
from ddc.ingress import gso
from ddc.ingress.transport import Transport
from ddc.metrics import IngressMetrics
from ddc.protocol.reassembly import Reassembler


class CapturingSocket:
    """Stands in for the transport's UdpSocket: keeps each datagram it is asked to send, and
    cuts a GSO send into its datagrams as the kernel does (`sends`: the sendmsg calls)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.sends: list[int] = []  # datagrams per sendmsg call

    def sendmsg(self, buffers: list, address: tuple, ancillary: Any = ()) -> int:
        data = b"".join(bytes(buffer) for buffer in buffers)
        size = len(data) or 1
        for level, kind, value in ancillary:
            assert (level, kind) == (gso.SOL_UDP, gso.UDP_SEGMENT)
            (size,) = struct.unpack("=H", value)
        datagrams = [data[at : at + size] for at in range(0, len(data), size)] or [data]
        self.sent.extend(datagrams)
        self.sends.append(len(datagrams))
        return len(data)


def transport_settings(destination: tuple[str, int], **config: Any) -> dict[str, Any]:
    """A Transport's settings: v1 defaults, unpaced, 1472-byte packets; `config` on top."""
    return {
        "destination": destination,
        "bind": ("127.0.0.1", 0),
        "max_packet_size": 1472,
        "rate": None,
        "send_delay_ms": 0,
        "startup_burst": 2,
        "shutdown_burst": 2,
        **config,
    }


def capturing_transport(
    destination: tuple[str, int], use_gso: bool = False, **config: Any
) -> tuple[Transport, CapturingSocket]:
    """A Transport to `destination` (v1 settings, unpaced; `config` on top) whose datagrams are
    kept in the returned socket's `sent`; `use_gso`: as on a kernel with UDP GSO."""
    transport = Transport(transport_settings(destination, **config), IngressMetrics())
    udp = CapturingSocket()
    transport.udp, transport.sockaddr = udp, destination
    transport.gso = use_gso
    return transport, udp


def make_receiver(
    delivered: list, max_chunk: int = 1 << 20, udp: Any = None, link: LinkState | None = None
) -> Receiver:
    """A Receiver that appends each chunk it delivers to `delivered` (as bytes)."""
    link = LinkState(1.0) if link is None else link
    return Receiver(udp, link, Reassembler(max_chunk), lambda chunk: delivered.append(bytes(chunk)))


def feed(receiver: Receiver, packets: list[bytes], address: tuple[str, int]) -> None:
    """`packets` arrive in one burst: the receiver's clock stands still while it handles them
    (a loaded machine that pauses this process for the FEC hold's 100 ms mid-burst would
    otherwise give up on a group before its parity is fed)."""
    at = time.monotonic()
    with mock.patch.object(receiver_module.time, "monotonic", lambda: at):
        for packet in packets:
            receiver.handle(memoryview(packet), len(packet), address)
