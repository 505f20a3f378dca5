"""What an attacker on the diode segment does: datagrams with a forged source address (a raw
socket, root only), and captures of genuine datagrams to replay (a relay in front of the egress).
"""

from __future__ import annotations

import os
import socket
import struct
import threading

import pytest

from tests.integration.streams import datagrams_until

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="raw sockets (forged source addresses) need root")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class Spoofer:
    """Sends UDP datagrams from any IPv4 source address and port (IP_HDRINCL raw socket)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.ident = 1

    def send(self, source: tuple[str, int], destination: tuple[str, int], payload: bytes) -> None:
        src, dst = socket.inet_aton(source[0]), socket.inet_aton(destination[0])
        length = 8 + len(payload)
        pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
        udp = struct.pack("!HHHH", source[1], destination[1], length, 0)
        udp = struct.pack(
            "!HHHH", source[1], destination[1], length, _checksum(pseudo + udp + payload) or 0xFFFF
        )
        self.ident = (self.ident + 1) & 0xFFFF
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + length,
            self.ident,
            0,
            64,
            socket.IPPROTO_UDP,
            0,
            src,
            dst,
        )
        self.sock.sendto(ip + udp + payload, (destination[0], 0))

    def close(self) -> None:
        self.sock.close()


class Tap(threading.Thread):
    """A relay between the ingress and the egress that keeps a copy of every datagram: what an
    attacker who captures traffic on the segment holds."""

    def __init__(self, listen_port: int, forward: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.sock.bind(("127.0.0.1", listen_port))
        self.sock.settimeout(0.2)
        self.forward = forward
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.captured: list[bytes] = []
        self.passing = True
        self._halt = threading.Event()

    def run(self) -> None:
        for data in datagrams_until(self.sock, self._halt):
            self.captured.append(data)
            if self.passing:
                self.out.sendto(data, self.forward)

    def replay(self, datagrams: list[bytes], source: socket.socket | None = None) -> None:
        sender = source or self.out
        for data in datagrams:
            sender.sendto(data, self.forward)

    def stop(self) -> None:
        self._halt.set()
        self.join(2)
        self.sock.close()
        self.out.close()
