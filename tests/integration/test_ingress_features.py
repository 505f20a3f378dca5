"""Ingress features with real processes: records batching, filters, pause/resume, drain on stop, file sink."""

from __future__ import annotations

import signal
import socket
import threading
import time

from devtools.harness import wait_until
from tests.integration.streams import (
    indexes,
    join_length_prefixed,
    make_record,
    read_length_prefixed,
    send_tcp_records,
    send_udp,
    send_udp_paced,
)


def test_records_envelope_batches_small_datagrams(linked):
    pair, collector = linked(
        source="udp",
        sink="udp",
        transport={"envelope": "records", "linger_ms": 2},
        egress_transport={"envelope": "records"},
    )
    count = 20_000
    send_udp_paced(pair.source_port, (make_record(i, 200) for i in range(count)), 4e6)
    got = collector.wait_for(count, timeout=30)
    collector.stop()
    assert indexes(got) == list(range(count))
    ingress = pair.ingress.metrics()
    assert ingress["ddc_ingress_chunks_sent_total"] < count / 20  # many records per chunk
    assert pair.egress.metrics()["ddc_egress_records_delivered_total"] == count


def test_filters_drop_count_and_let_the_rest_through(linked):
    filters = [
        {"type": "keyword", "words": ["SECRET"]},
        {"type": "max_size", "max_bytes": 1000},
    ]
    pair, collector = linked(source="tcp", sink="tcp", filters=filters)
    records = [b"ok %d" % i for i in range(100)] + [b"a SECRET plan"] * 7 + [b"x" * 2000] * 3
    send_tcp_records(pair.source_port, records)
    # the filters judged all ten rejects (sent last), and all 100 kept records were delivered
    wait_until(
        lambda: (
            pair.ingress.metric("ddc_ingress_records_filtered_total") == 10
            and pair.egress.metric("ddc_egress_records_delivered_total") == 100
            and len(collector.records) == 100
        ),
        10,
        message=lambda: f"100 records and 10 filtered; collected {len(collector.records)}",
    )
    collector.stop()
    assert collector.records == records[:100]
    metrics = pair.ingress.metrics()
    assert metrics['ddc_ingress_records_filtered_total{filter="keyword"}'] == 7
    assert metrics['ddc_ingress_records_filtered_total{filter="max_size"}'] == 3
    assert "filter keyword dropped a record" in pair.ingress.log()


def test_pause_stops_reading_and_resume_loses_nothing(linked):
    pair, collector = linked(source="tcp", sink="tcp")
    assert pair.ingress.post("/admin/pause") == {"paused": True}
    assert pair.ingress.health()["paused"] is True
    sender = threading.Thread(
        target=send_tcp_records, args=(pair.source_port, [make_record(i, 1000) for i in range(500)])
    )
    sender.start()
    time.sleep(1.0)  # a window in which a paused source must read nothing (TCP holds the data)
    assert pair.ingress.metric("ddc_ingress_records_total") == 0
    assert len(collector.records) == 0
    assert pair.ingress.metrics()["ddc_ingress_paused"] == 1
    assert pair.ingress.post("/admin/resume") == {"paused": False}
    sender.join(20)
    wait_until(lambda: len(collector.records) == 500, 20, message="500 records")
    collector.stop()
    assert indexes(collector.records) == list(range(500))


def test_a_pause_while_the_udp_reader_waits_leaves_every_datagram_queued(linked):
    """The reader is waiting on the socket when the pause comes: what arrives afterwards is read
    only after resume (at most one datagram held by the reader, none counted or sent)."""
    pair, collector = linked(source="udp", sink="tcp", source_options={"receive_buffer": "16MiB"})
    send_udp(pair.source_port, [make_record(0, 1000)])
    wait_until(lambda: len(collector.records) == 1, 10, message="the first record")
    assert pair.ingress.post("/admin/pause") == {"paused": True}
    send_udp(pair.source_port, [make_record(i, 1000) for i in range(1, 301)])
    time.sleep(1.0)  # a window in which a paused source must read nothing
    assert pair.ingress.metric("ddc_ingress_records_total") == 1
    assert len(collector.records) == 1
    assert pair.ingress.health()["source_kernel_drops"] == 0
    assert pair.ingress.post("/admin/resume") == {"paused": False}
    wait_until(lambda: len(collector.records) == 301, 20, message="301 records")
    collector.stop()
    assert indexes(collector.records) == list(range(301))


def test_a_pause_while_a_tcp_connection_waits_stops_it_reading(linked):
    """A connection open before the pause: what its peer writes afterwards is read only after
    resume (at most one read held by its greenlet, nothing counted or sent)."""
    pair, collector = linked(source="tcp", sink="tcp")
    with socket.create_connection(("127.0.0.1", pair.source_port)) as conn:
        conn.sendall(join_length_prefixed([make_record(0, 1000)]))
        wait_until(lambda: len(collector.records) == 1, 10, message="the first record")
        assert pair.ingress.post("/admin/pause") == {"paused": True}
        conn.sendall(join_length_prefixed([make_record(i, 1000) for i in range(1, 301)]))
        time.sleep(1.0)  # a window in which a paused source must read nothing
        assert pair.ingress.metric("ddc_ingress_records_total") == 1
        assert len(collector.records) == 1
        assert pair.ingress.post("/admin/resume") == {"paused": False}
        wait_until(lambda: len(collector.records) == 301, 20, message="301 records")
    collector.stop()
    assert indexes(collector.records) == list(range(301))


def test_sigterm_drains_the_queue_before_shutdown(linked):
    # 2 Mbit/s: 200 × 5 KB take ~4 s to send, so most are still queued when SIGTERM comes
    count = 200
    pair, collector = linked(source="tcp", sink="tcp", transport={"rate": "2Mbit"})
    send_tcp_records(pair.source_port, [make_record(i, 5000) for i in range(count)])
    wait_until(
        lambda: pair.ingress.metric("ddc_ingress_records_total") == count, 10, message="read"
    )
    wait_until(lambda: collector.records, 10, message="the first records delivered")
    health = pair.ingress.health()
    assert health["queued_records"] + health["queued_chunk_bytes"] > 0, health
    pair.ingress.process.send_signal(signal.SIGTERM)
    # read after the signal, so at the signal too: records were still on their way
    assert len(collector.records) < count
    assert pair.ingress.process.wait(20) == 0
    wait_until(lambda: len(collector.records) == count, 10, message=f"all {count} after SIGTERM")
    wait_until(
        lambda: pair.egress.health()["link_down_reason"] == "shutdown", 5, message="Shutdown seen"
    )
    collector.wait_for(count, 0)  # a settle time: a surplus record would show
    collector.stop()
    assert indexes(collector.records) == list(range(count))
    assert pair.egress.metric("ddc_egress_records_delivered_total") == count
    log = pair.ingress.log()
    assert log.index("SIGTERM received") < log.index(f"Shutdown burst sent at seq {count}")
    assert "drain timed out" not in log


def test_file_sink_and_reference_send_delay(pairs, tmp_path):
    out = tmp_path / "out.bin"
    pair = pairs(
        source="udp", sink="file", sink_options={"path": str(out)}, transport={"send_delay_ms": 1.0}
    )
    pair.start()
    send_udp(pair.source_port, [b"line %d" % i for i in range(50)])
    wait_until(
        lambda: pair.egress.metrics()["ddc_egress_records_delivered_total"] == 50, 10, message="50"
    )
    assert read_length_prefixed(out) == [b"line %d" % i for i in range(50)]


def test_oversized_tcp_record_is_skipped_whole_and_counted(linked):
    pair, collector = linked(source="tcp", sink="tcp", source_options={"max_record_size": 1000})
    send_tcp_records(pair.source_port, [b"first", bytes(768 * 1024), b"x" * 300 * 1024, b"END"])
    wait_until(lambda: collector.records[-1:] == [b"END"], 10, message="END")
    collector.stop()
    assert collector.records == [b"first", b"END"]
    metrics = pair.ingress.metrics()
    assert metrics['ddc_ingress_records_dropped_total{reason="oversized"}'] == 2


def test_destination_by_name_and_unwritable_file_sink(pairs):
    pair = pairs(
        source="udp",
        sink="file",
        sink_options={"path": "/dev/full"},
        transport={"destination": "localhost:0"},
    )
    pair.transport["destination"] = f"localhost:{pair.link_port}"
    pair.start()
    send_udp(pair.source_port, [b"r%d" % i for i in range(20)])
    # a full disk at the target is an outage: retried, the records wait in the spool
    health = wait_until(
        lambda: (h := pair.egress.health())["spool"]["chunks"] == 20 and not h["sink_ok"] and h,
        10,
        message="20 records spooled, the file sink failing",
    )
    assert "No space left" in health["sink_error"]
    assert pair.egress.metric("ddc_egress_sink_errors_total") >= 1
    assert pair.egress.metric("ddc_egress_records_dropped_total") == 0
    assert pair.egress.process.poll() is None  # a full disk is counted, not a crash
    assert pair.egress.health()["link_up"] is True
