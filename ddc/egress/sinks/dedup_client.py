"""The egress dedup sink's HTTP connection: http.client with no Nagle stall on kept-alive requests.

http.client writes a request's headers and its body with two send() calls. On a kept-alive
connection Nagle's algorithm holds the second (small) write until the first is acknowledged, and
the server delays that ACK (it waits for the rest of the request): every request then costs a
delayed-ACK timeout (~40 ms on Linux) instead of well under a millisecond. TCP_NODELAY sends each
write at once; TCP_CORK (Linux) around the request puts headers and body in one segment.
"""

from __future__ import annotations

import http.client
import socket
from typing import Any

CORK: int | None = getattr(socket, "TCP_CORK", None)


def no_delay(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class DedupConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        no_delay(self.sock)

    def request(
        self, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any
    ) -> None:
        if self.sock is None:
            self.connect()
        sock, cork = self.sock, CORK
        if sock is None or cork is None:
            super().request(method, url, body=body, headers=headers or {}, **kw)
            return
        sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
        try:
            super().request(method, url, body=body, headers=headers or {}, **kw)
        finally:
            sock.setsockopt(socket.IPPROTO_TCP, cork, 0)


class DedupHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        no_delay(self.sock)
