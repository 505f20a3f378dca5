"""Graceful stop of an ingress with a UDP source: the kernel backlog is sent or counted; and
the memory the TCP source holds for unfinished records, bounded across connections.

Datagrams the kernel accepted into the source socket are the ingress's responsibility: on
SIGTERM it reads them and sends them within the drain timeout, and whatever it cannot send is
counted as dropped (records_dropped{reason="shutdown"}) and logged, never silently left behind.
"""

from __future__ import annotations

import re
import signal

import pytest

from devtools.harness import Daemon, wait_until
from tests.integration.streams import Collector, indexes, make_record, send_udp

pytestmark = pytest.mark.timeout(120)

SOURCE = {"receive_buffer": "128MiB"}


def backlog(pair, count: int, size: int) -> None:
    """`count` datagrams waiting in the source socket's kernel buffer: the ingress is paused
    (reads nothing) while they are sent."""
    assert pair.ingress.post("/admin/pause") == {"paused": True}
    send_udp(pair.source_port, [make_record(i, size) for i in range(count)])
    health = pair.ingress.health()
    assert health["source_kernel_drops"] == 0, health  # every one is in the socket buffer
    assert pair.ingress.metric("ddc_ingress_records_total") == 0


def counted_at_shutdown(log: str) -> int:
    lines = re.findall(r"(\d+) (?:datagrams|records) [^\n]*\(counted as dropped\)", log)
    return sum(int(n) for n in lines)


def test_sigterm_sends_the_kernel_backlog(pairs):
    count = 3000
    pair = pairs(source="udp", sink="tcp", source_options=SOURCE, transport={"rate": "16Mbit"})
    collector = Collector("tcp", pair.sink_port)
    collector.start()
    try:
        pair.start()
        backlog(pair, count, 1000)
        pair.ingress.process.send_signal(signal.SIGTERM)
        assert pair.ingress.process.wait(30) == 0
        got = collector.wait_for(count, timeout=10)
    finally:
        collector.stop()
    assert indexes(got) == list(range(count))
    log = pair.ingress.log()
    assert "counted as dropped" not in log
    assert "Shutdown burst sent" in log


def test_what_the_drain_time_cannot_send_is_counted(pairs, tmp_path):
    """78 MB of 60 kB datagrams: more than the pipeline holds (1 MiB of records, 64 MiB of
    chunks), sent at 8 Mbit/s with 2 s to drain: most stay in the kernel's buffer or the
    pipeline."""
    count = 1300
    transport = {"rate": "8Mbit", "queue_bytes": "1MiB"}  # the records queue: 1 MiB
    pair = pairs(source="udp", sink="tcp", source_options=SOURCE, transport=transport)
    collector = Collector("tcp", pair.sink_port)
    collector.start()
    try:
        egress = pair.start_egress()
        config = pair.ingress_config()
        ingress = Daemon("ingress", config, pair.ingress_http, tmp_path / "ingress-drain.log")
        ingress.argv += ["--drain-timeout", "2"]
        ingress.headers = {"Authorization": f"Bearer {pair.admin_token}"}
        pair.ingress = ingress.start()
        wait_until(lambda: egress.health()["link_up"], 10, message="link up")
        backlog(pair, count, 60_000)
        ingress.process.send_signal(signal.SIGTERM)
        assert ingress.process.wait(30) == 0
        wait_until(lambda: egress.health()["link_down_reason"] == "shutdown", 5, message="Shutdown")
        got = collector.wait_for(count, timeout=2)
    finally:
        collector.stop()
    log = ingress.log()
    counted = counted_at_shutdown(log)
    assert "datagrams left in the socket buffer at shutdown" in log
    assert 0 < len(got) < count and counted > 0
    assert indexes(got) == list(range(len(got)))  # in order, none twice
    assert len(got) + counted == count, log[-2000:]  # every datagram sent or counted


# --- memory held by the TCP source --------------------------------------------------------

MiB = 1024**2


def test_tcp_unfinished_records_are_bounded_across_connections(linked):
    """Two connections hold 3 MiB of unfinished 4 MiB records each under max_pending_bytes
    = 8 MiB; a third one that would take the total past it is closed and its record counted;
    the first two finish and deliver, and a new connection is served."""
    import socket

    pair, collector = linked(
        source="tcp",
        sink="tcp",
        source_options={"max_record_size": "4MiB", "max_pending_bytes": "8MiB"},
    )
    big = [bytes([i]) * (4 * MiB) for i in (1, 2)]

    def pending() -> int:
        return int(pair.ingress.health()["source_pending_bytes"])

    conns = [socket.create_connection(("127.0.0.1", pair.source_port)) for _ in range(3)]
    try:
        for conn, record in zip(conns[:2], big, strict=True):
            conn.sendall(len(record).to_bytes(4, "big") + record[: 3 * MiB])
        wait_until(lambda: pending() == 6 * MiB, 10, message=lambda: f"6 MiB held, {pending()}")
        try:
            conns[2].sendall((4 * MiB).to_bytes(4, "big") + bytes(3 * MiB))
            conns[2].settimeout(10)
            assert conns[2].recv(1) == b""  # closed by the ingress
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed by the ingress while we were still sending
        metric = 'ddc_ingress_records_dropped_total{reason="pending_limit"}'
        wait_until(lambda: pair.ingress.metric(metric) == 1, 10, message="one refusal")
        wait_until(lambda: pending() == 6 * MiB, 10, message="the refused one's bytes freed")
        for conn, record in zip(conns[:2], big, strict=True):
            conn.sendall(record[3 * MiB :] + (5).to_bytes(4, "big") + b"small")
    finally:
        for conn in conns:
            conn.close()
    with socket.create_connection(("127.0.0.1", pair.source_port)) as late:
        late.sendall((4).to_bytes(4, "big") + b"late")
    got = collector.wait_for(5, timeout=20)
    assert sorted(got) == sorted([*big, b"small", b"small", b"late"])
    assert pending() == 0
    metrics = pair.ingress.metrics()
    assert metrics.get('ddc_ingress_records_dropped_total{reason="truncated"}', 0) == 0
    assert metrics["ddc_ingress_source_pending_bytes"] == 0
    assert "over max_pending_bytes 8388608" in pair.ingress.log()
