"""UDP generic segmentation offload (GSO): several datagrams handed to the kernel in one send.

A `sendmsg` carrying a UDP_SEGMENT control message of S bytes (Linux >= 4.18) makes the kernel
cut the bytes it is given into datagrams of S bytes each, the last one possibly shorter: one
system call (and one pass through Python's socket layer) for up to MAX_SEGMENTS datagrams
instead of one per datagram. The datagrams on the wire are exactly those of separate sends (a
NIC without segmentation offload, or the kernel before the NIC, makes each its own IP packet);
only their cost at the sender changes. The ingress sends a chunk's data packets this way (all
`payload_max` long but the last) and the parity packets of a group (all of one size).

Rules (`Batch`, a pure accumulator; the transport sends what `take` returns):
* A batch holds datagrams in send order: any number of S-byte ones (S = the first datagram's
  size), then at most one shorter one, which ends it. A datagram joins (`fits`) when the batch
  is empty, or it is not longer than S, no shorter one ended the batch yet, the batch holds
  fewer than MAX_SEGMENTS datagrams and the bytes stay within MAX_BYTES (the largest UDP
  payload). Otherwise the batch must be sent first.
* `take()` empties the batch and returns it: its datagrams (each a list of buffers, for a
  datagram-by-datagram send), its buffers in one list (for the GSO send), S, and its bytes.
* When the kernel refuses a GSO send as such (`REFUSED`: no UDP_SEGMENT for this route or
  device, a segment longer than the path MTU), the transport sends the batch datagram by
  datagram and stops using GSO.
"""

from __future__ import annotations

import errno
import functools
import socket
import struct

from ddc.netio import SOL_UDP
from ddc.protocol.fragment import Payload
from ddc.protocol.wire import MAX_DATAGRAM

UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h
MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS of the kernels that have UDP_SEGMENT (newer ones take 128)
MAX_BYTES = MAX_DATAGRAM  # one send's bytes: the UDP length limit holds for the whole of it
# errors of a GSO send that a datagram-by-datagram send may not meet
REFUSED = {errno.EINVAL, errno.EIO, errno.EOPNOTSUPP, errno.ENOPROTOOPT, errno.EMSGSIZE}


def supported(sock: socket.socket) -> bool:
    """Whether this kernel knows UDP_SEGMENT (setting it to 0, "no segmentation", is harmless)."""
    try:
        sock.setsockopt(SOL_UDP, UDP_SEGMENT, 0)
    except OSError:
        return False
    return True


@functools.cache
def segment_control(size: int) -> list[tuple[int, int, bytes]]:
    """The control message of a GSO send of `size`-byte segments."""
    return [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))]


class Batch:
    __slots__ = ("datagrams", "buffers", "segment", "bytes", "closed", "end")

    def __init__(self) -> None:
        self.datagrams: list[list[Payload]] = []
        self.buffers: list[Payload] = []
        self.segment = 0
        self.bytes = 0
        self.closed = False  # a shorter datagram ended the batch
        self.end = 0  # for the caller: e.g. the seq after the batch's last data packet

    def fits(self, length: int) -> bool:
        if not self.datagrams:
            return True
        return (
            not self.closed
            and length <= self.segment
            and len(self.datagrams) < MAX_SEGMENTS
            and self.bytes + length <= MAX_BYTES
        )

    def add(self, parts: list[Payload], length: int) -> None:
        """Appends one datagram (its buffers, `length` bytes in all); `fits` must hold."""
        if not self.datagrams:
            self.segment = length
        elif length < self.segment:
            self.closed = True
        self.datagrams.append(parts)
        self.buffers.extend(parts)
        self.bytes += length

    def take(self) -> tuple[list[list[Payload]], list[Payload], int, int]:
        """(datagrams, all their buffers, segment size, bytes); the batch is empty after it."""
        taken = self.datagrams, self.buffers, self.segment, self.bytes
        self.datagrams, self.buffers = [], []
        self.segment = self.bytes = 0
        self.closed = False
        return taken
