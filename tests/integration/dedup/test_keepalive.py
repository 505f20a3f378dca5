"""Kept-alive requests to a real `ddc-dedup serve` get their answer in one go.

gevent's WSGI server writes the headers and the body of an answer separately; without
TCP_NODELAY the body waited for the client's delayed ACK of the headers (~40 ms on Linux, on
98 of 100 answers). The gap between an answer's first bytes and its complete body is measured
on the client; a stall is a wall-clock timer, far above what CPU load adds between two writes.
"""

from __future__ import annotations

import json
import socket
import time

from tests.integration.dedup.conftest import API_TOKEN

STALL = 0.03  # seconds: a delayed ACK is 40 ms


def answer_gaps(port: int, requests: int) -> list[float]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    gaps = []
    try:
        for index in range(requests):
            body = json.dumps({"link": "a", "records": [{"id": f"k-{index}", "value": "dg=="}]})
            head = (
                f"POST /v1/records HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body.encode())  # one write: no client-side stall
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


def test_kept_alive_answers_do_not_wait_for_a_delayed_ack(dedup_server):
    server = dedup_server()
    port = int(server.url.rsplit(":", 1)[1])
    gaps = answer_gaps(port, 50)
    stalled = sum(gap > STALL for gap in gaps)
    assert stalled <= 5, f"{stalled} of 50 answers waited > {STALL * 1000:.0f} ms for their body"
