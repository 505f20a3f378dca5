"""The gap between an answer's first bytes and its complete body, on one kept-alive connection.

gevent's WSGI server writes the headers and the body of an answer separately; without
TCP_NODELAY the body waits for the client's delayed ACK of the headers (~40 ms on Linux). A
stall is a wall-clock timer, far above what CPU load adds between two writes.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

STALL = 0.03  # seconds: a delayed ACK is 40 ms


def answer_gaps(port: int, requests: Iterable[bytes]) -> list[float]:
    """Sends each request (whole, in one write) and times its answer (a 200 expected)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    gaps = []
    try:
        for request in requests:
            sock.sendall(request)  # one write: no client-side stall
            data, first = b"", None
            while True:
                chunk = sock.recv(65536)
                assert chunk, "connection closed"
                first = first or time.perf_counter()
                data += chunk
                header, sep, rest = data.partition(b"\r\n\r\n")
                if sep:
                    assert header.startswith(b"HTTP/1.1 200"), header
                    length = next(
                        int(line.split(b":")[1])
                        for line in header.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    if len(rest) >= length:
                        break
            gaps.append(time.perf_counter() - first)
    finally:
        sock.close()
    return gaps
