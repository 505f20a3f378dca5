"""Fast cooperative UDP sockets for the hot path, and kernel buffer sizing.

The socket is a plain non-blocking stdlib socket; when a call would block we park the greenlet
on a libev watcher owned by the socket (what gevent's own sockets do, minus a layer of
Python per call). Works with or without monkey-patching.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Mapping

import gevent
from gevent import monkey
from gevent.lock import Semaphore

log = logging.getLogger(__name__)

_stdlib_socket = monkey.get_original("socket", "socket")
# Linux values; the socket module does not export them
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
# a receive buffer larger than any UDP datagram (65527 bytes over IPv6): none is ever truncated
RECEIVE_SIZE = 65536
SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_GRO = getattr(socket, "UDP_GRO", 104)  # linux/udp.h, Linux >= 5.0
GRO_CMSG_SPACE = socket.CMSG_SPACE(4)  # the segment size, an int
_GRO_SEGMENT = struct.Struct("=i")


def split_run(data: bytes, ancillary: list[tuple[int, int, bytes]]) -> list[bytes]:
    """The datagrams in one received buffer, each its own bytes object: one, or with UDP GRO
    the run of datagrams the kernel coalesced (a control message gives their size S: every
    datagram S bytes long, the last possibly shorter)."""
    for level, kind, value in ancillary:
        if level == SOL_UDP and kind == UDP_GRO and len(value) >= _GRO_SEGMENT.size:
            size = _GRO_SEGMENT.unpack_from(value)[0]
            if 0 < size < len(data):
                return [data[start : start + size] for start in range(0, len(data), size)]
    return [data]


def in_container(root: str = "/", environ: Mapping[str, str] | None = None) -> bool:
    """True inside a Docker/Podman container or a Kubernetes pod: KUBERNETES_SERVICE_HOST is
    set, /.dockerenv or /run/.containerenv exists, or PID 1's cgroup names a container runtime
    (cgroup v1). `root` and `environ` are for tests."""
    if (os.environ if environ is None else environ).get("KUBERNETES_SERVICE_HOST"):
        return True
    marks = (".dockerenv", "run/.containerenv")
    if any(os.path.exists(os.path.join(root, mark)) for mark in marks):
        return True
    try:
        with open(os.path.join(root, "proc/1/cgroup")) as cgroup:
            text = cgroup.read()
    except OSError:
        return False
    return any(word in text for word in ("docker", "kubepods", "containerd", "libpod", "lxc"))


def buffer_advice(sysctl: str, force_option: str, container: bool) -> str:
    """What to do about a buffer smaller than asked: outside a container, the sysctl or root;
    inside one, neither the sysctl (the host's, read-only here) nor root (no CAP_NET_ADMIN)
    is the container's to change."""
    if not container:
        return f"raise the sysctl {sysctl} (or run as root)"
    return (
        f"in a container: raise {sysctl} on the host (sysctl -w {sysctl}=...; the container "
        f"cannot), or grant the container CAP_NET_ADMIN ({force_option})"
    )


def _resize_buffer(
    sock: socket.socket, option: int, force_option: int, size: int, sysctl: str, force_name: str
) -> int:
    """Ask for `size` bytes of kernel buffer (forced past the sysctl limit with CAP_NET_ADMIN);
    the size granted, with a warning naming the sysctl when it is less."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_option, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, option, size)
    granted = sock.getsockopt(socket.SOL_SOCKET, option) // 2  # Linux reports double
    if granted < size:
        log.warning(
            "socket buffer is %d bytes, %d requested: %s",
            granted,
            size,
            buffer_advice(sysctl, force_name, in_container()),
        )
    return granted


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """SO_RCVBUF of `sock`: the one buffer sizer of every UDP socket DDC and its tools open."""
    return _resize_buffer(
        sock, socket.SO_RCVBUF, SO_RCVBUFFORCE, size, "net.core.rmem_max", "SO_RCVBUFFORCE"
    )


def set_send_buffer(sock: socket.socket, size: int) -> int:
    return _resize_buffer(
        sock, socket.SO_SNDBUF, SO_SNDBUFFORCE, size, "net.core.wmem_max", "SO_SNDBUFFORCE"
    )


def socket_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped on `sock` (full receive buffer), from /proc/net/udp*."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as handle:
                next(handle)
                for line in handle:
                    fields_ = line.split()
                    if len(fields_) > 12 and fields_[9] == inode:
                        return int(fields_[12])
        except OSError:
            continue
    return None


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class UdpSocket:
    """A non-blocking UDP socket whose blocking calls yield to the gevent hub."""

    def __init__(self, family: int = socket.AF_INET) -> None:
        self.sock = _stdlib_socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        loop = gevent.get_hub().loop
        self._readable = loop.io(self.sock.fileno(), 1)
        self._writable = loop.io(self.sock.fileno(), 2)
        # a libev watcher wakes one waiter: greenlets that find the socket full queue here
        self._write_waiters = Semaphore()
        self.truncated = 0  # received buffers cut at RECEIVE_SIZE (recv_run)

    @classmethod
    def bound(cls, address: tuple[str, int], receive_buffer: int | None = None) -> UdpSocket:
        udp = cls(family_of(address[0]))
        if receive_buffer:
            set_receive_buffer(udp.sock, receive_buffer)
        udp.sock.bind(address)
        return udp

    def getsockname(self) -> tuple:
        return self.sock.getsockname()

    def enable_gro(self) -> bool:
        """Lets the kernel hand over a run of same-size datagrams from one sender in one buffer
        (UDP GRO: one system call instead of one per datagram); False where it cannot."""
        try:
            self.sock.setsockopt(SOL_UDP, UDP_GRO, 1)
        except OSError:
            return False
        return True

    def recv_run(self, pause: float = 0.0) -> tuple[list[bytes], tuple]:
        """The next datagram, or with GRO on the next run of them (`split_run`), and the
        sender's address. A coalesced buffer cut at RECEIVE_SIZE (only where the device's
        gro_max_size was raised above 64 KiB) loses its incomplete last datagram: counted in
        `truncated` and logged.

        `pause`: on an empty socket, sleep that long and look again before waiting for the next
        datagram: datagrams arriving a moment apart are then read one after another on one
        wake-up instead of one wake-up each."""
        paused = not pause
        while True:
            try:
                data, ancillary, flags, address = self.sock.recvmsg(RECEIVE_SIZE, GRO_CMSG_SPACE)
            except BlockingIOError:
                if paused:
                    gevent.get_hub().wait(self._readable)
                else:
                    paused = True
                    gevent.sleep(pause)
                continue
            datagrams = split_run(data, ancillary)
            if flags & socket.MSG_TRUNC:
                self._truncated(datagrams)
            return datagrams, address

    def _truncated(self, datagrams: list[bytes]) -> None:
        if len(datagrams) > 1 and len(datagrams[-1]) < len(datagrams[0]):
            datagrams.pop()  # cut short: its seq is counted lost downstream
        self.truncated += 1
        if self.truncated == 1 or self.truncated % 1000 == 0:
            log.error(
                "a received buffer was longer than %d bytes and cut (%d so far): a UDP GRO run "
                "over the device's gro_max_size (set it to 65536 or less: ip link set DEV "
                "gro_max_size 65536)",
                RECEIVE_SIZE,
                self.truncated,
            )

    def recv(self, size: int = RECEIVE_SIZE) -> bytes:
        """One datagram as a bytes object of its own size (no second copy, unlike recv_into)."""
        while True:
            try:
                return self.sock.recv(size)
            except BlockingIOError:
                gevent.get_hub().wait(self._readable)

    def _wait_writable(self) -> None:
        with self._write_waiters:
            gevent.get_hub().wait(self._writable)

    def sendto(self, data: bytes | memoryview, address: tuple) -> int:
        while True:
            try:
                return self.sock.sendto(data, address)
            except BlockingIOError:
                self._wait_writable()

    def sendmsg(self, buffers: list, address: tuple, ancillary: list | tuple = ()) -> int:
        while True:
            try:
                return self.sock.sendmsg(buffers, ancillary, 0, address)
            except BlockingIOError:
                self._wait_writable()

    def close(self) -> None:
        self._readable.close()
        self._writable.close()
        self.sock.close()
