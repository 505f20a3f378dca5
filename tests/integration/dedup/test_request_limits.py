"""Oversized and hostile bodies on a real `ddc-dedup serve`: refused fast, in bounded memory,
while /healthz keeps answering."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import requests

from tests.integration.dedup.conftest import API_TOKEN

MiB = 1024**2


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def post_raw(url: str, head: dict[str, str], chunks, timeout: float = 30.0) -> tuple[int, float]:
    """(status, seconds) of a POST /v1/records whose body is sent as `chunks` (bytes each) while
    reading the answer; stops sending once the server answered or closed."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    lines = ["POST /v1/records HTTP/1.1", f"Host: {host}", f"Authorization: Bearer {API_TOKEN}"]
    lines += [f"{name}: {value}" for name, value in head.items()]
    started = time.monotonic()
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    answer = bytearray()

    def read() -> None:
        try:
            while b"\r\n" not in answer:
                data = sock.recv(4096)
                if not data:
                    return
                answer.extend(data)
        except OSError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for chunk in chunks:
            if not reader.is_alive():
                break
            sock.sendall(chunk)
    except OSError:  # the server answered and closed: it read no further
        pass
    reader.join(timeout)
    elapsed = time.monotonic() - started
    sock.close()
    assert answer, "no answer"
    return int(answer.split(b" ", 2)[1]), elapsed


def health_times(url: str, stop: threading.Event, times: list[float]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            requests.get(url + "/healthz", timeout=10).raise_for_status()
        except requests.RequestException:
            pass  # a timeout counts as its full wait
        times.append(time.monotonic() - started)
        time.sleep(0.05)


def test_a_body_over_max_request_size_is_refused_from_its_content_length(dedup_server):
    server = dedup_server(max_request_size="8MiB")
    assert server.process is not None
    before = rss_mib(server.process.pid)
    body = b"x" * MiB
    head = {"Content-Type": "application/json", "Content-Length": str(63 * MiB)}
    status, seconds = post_raw(server.url, head, (body for _ in range(63)))
    assert status == 413 and seconds < 5
    assert rss_mib(server.process.pid) - before < 32
    assert server.get("/healthz").status_code == 200


def test_a_chunked_body_is_refused_unread(dedup_server):
    server = dedup_server(max_request_size="8MiB")
    assert server.process is not None
    before = rss_mib(server.process.pid)
    piece = b"x" * MiB
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    head = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    status, seconds = post_raw(server.url, head, (chunk for _ in range(63)))
    assert status == 411 and seconds < 5
    assert rss_mib(server.process.pid) - before < 32
    assert server.get("/healthz").status_code == 200


def test_too_many_records_are_refused_before_validation(dedup_server):
    """63 MiB of small records under the default max_request_size (64 MiB): 413 batch_too_large
    before any per-record validation; /healthz answers meanwhile (measured)."""
    server = dedup_server()
    assert server.process is not None
    record = {"value": "eA==" * 40, "headers": {"ddc-src": "b3JkZXJzLzAvMQ=="}}
    count = 63 * MiB // len(json.dumps(record))
    body = json.dumps({"link": "a", "records": [record] * count}).encode()
    assert 62 * MiB < len(body) < 64 * MiB
    before = rss_mib(server.process.pid)
    stop, times = threading.Event(), []
    watcher = threading.Thread(target=health_times, args=(server.url, stop, times))
    watcher.start()
    started = time.monotonic()
    response = server.session.post(
        server.url + "/v1/records",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    seconds = time.monotonic() - started
    stop.set()
    watcher.join(15)
    grown = rss_mib(server.process.pid) - before
    print(
        f"\n{len(body) / MiB:.1f} MiB, {count} records: {response.status_code} in {seconds:.2f}s,"
        f" RSS +{grown:.0f} MiB, /healthz max {max(times):.3f}s over {len(times)} answers"
    )
    assert response.status_code == 413 and response.json()["code"] == "batch_too_large"
    assert seconds < 30 and grown < 1024


def test_json_nested_100000_levels_is_a_400(dedup_server):
    server = dedup_server()
    body = b'{"link": "a", "records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = server.session.post(
        server.url + "/v1/records", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_json"
    deep = {"link": "a", "ids": ["x"]}
    body = (
        json.dumps(deep).encode()[:-1]
        + b', "fingerprints": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}"
    )
    assert server.session.post(server.url + "/v1/claims", data=body).status_code == 400
    assert server.get("/healthz").status_code == 200
