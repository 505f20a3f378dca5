"""The egress proxy: receiver, deliverer, link watch and HTTP wired into one Service."""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from ddc.daemon import Service
from ddc.egress.link import LinkState
from ddc.egress.receiver import Receiver
from ddc.egress.sinks import make_sink
from ddc.errors import EnvelopeError
from ddc.http import HttpServer
from ddc.metrics import EgressMetrics, Exporter
from ddc.netio import UdpSocket, socket_drops
from ddc.protocol.envelope import decode_records, is_records
from ddc.protocol.reassembly import Reassembler
from ddc.protocol.record import Record
from ddc.protocol.wire import MessageType
from ddc.queues import CostQueue
from ddc.units import format_hostport

log = logging.getLogger(__name__)

STOP = object()
ITEM_OVERHEAD = 64


class EgressProxy(Service):
    name = "egress"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.name = f"egress {config['name']}"
        transport = config["transport"]
        self.metrics = EgressMetrics()
        self.link = LinkState(transport["heartbeat_timeout"], transport["expected_sender"])
        self.reassembler = Reassembler(transport["max_chunk_size"])
        self.chunks = CostQueue(transport["queue_bytes"])
        self.envelope = transport["envelope"]
        self.sink = make_sink(config["sink"], self.metrics)
        self.sink.owner = self
        self.udp: UdpSocket | None = None
        self.receiver: Receiver | None = None
        self.http: HttpServer | None = None
        if config["http_listen"]:
            routes = {("GET", "/healthz"): self.healthz}
            self.http = HttpServer(
                config["http_listen"], self.metrics.registry, routes, self.sync_metrics
            )
        self._exporter = Exporter()
        self.records_delivered = 0
        self._deliverer: gevent.Greenlet | None = None

    # --- pipeline -----------------------------------------------------------------------------

    def _enqueue(self, chunk: bytes | bytearray | memoryview) -> None:
        self.chunks.put(chunk, len(chunk) + ITEM_OVERHEAD)

    def _records_of(self, chunk: bytes | bytearray) -> list[Record] | None:
        # auto: a chunk is a records batch only if its header and checksum say so; anything
        # else (a raw record that merely starts with the magic) is delivered as raw
        checked = self.envelope == "auto" and is_records(chunk)
        if checked or self.envelope == "records":
            try:
                return decode_records(chunk, checked)
            except EnvelopeError as exc:
                self.metrics.envelope_errors.inc()
                self.metrics.records_dropped.labels(reason="envelope").inc()
                log.error("chunk of %d bytes dropped: %s", len(chunk), exc)
                return None
        if not isinstance(chunk, bytes) and not self.sink.accepts_views:
            chunk = bytes(chunk)
        return [Record(chunk)]

    def _deliver(self) -> None:
        delivered = 0
        while True:
            chunk = self.chunks.get()
            if chunk is STOP:
                return
            records = self._records_of(chunk)
            if records:
                try:
                    self.sink.send(records)
                    self.records_delivered += len(records)
                except Exception:
                    # a sink must count its own failures; this is the net under a broken one
                    self.metrics.records_dropped.labels(reason="sink_error").inc(len(records))
                    self.metrics.sink_errors.inc()
                    log.exception("sink failed on %d records; dropped", len(records))
            delivered += 1
            if delivered % 16 == 0:
                gevent.sleep(0)  # a backlog must not starve the receiver

    def _watch_link(self) -> None:
        interval = min(0.5, self.link.timeout / 4)
        while True:
            gevent.sleep(interval)
            if self.link.check_timeout():
                self.metrics.link_interruptions.labels(reason="heartbeat_timeout").inc()
            self.metrics.link_up.set(1 if self.link.up else 0)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        transport = self.config["transport"]
        self.udp = UdpSocket.bound(transport["listen"], transport["receive_buffer"])
        self.receiver = Receiver(self.udp, self.link, self.reassembler, self._enqueue)
        self.sink.start()
        if self.http is not None:
            self.http.start()
        self._deliverer = self.spawn(self._deliver, name="deliver")
        self.spawn(self._watch_link, name="link-watch")
        self.spawn(self.receiver.run, name="receiver")
        log.info("%s listening on %s", self.name, format_hostport(self.udp.getsockname()))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop receiving, hand what was reassembled to the sink, flush it, close."""
        deadline = time.monotonic() + timeout
        for greenlet in list(self.group):
            if greenlet.name in ("receiver", "link-watch"):
                greenlet.kill(block=True, timeout=1.0)
        if self._deliverer is not None and not self._deliverer.dead:
            self.chunks.put(STOP, 1, timeout=max(0.1, deadline - time.monotonic()))
            self._deliverer.join(max(0.1, deadline - time.monotonic()))
        left = 0
        while len(self.chunks):
            chunk = self.chunks.get_nowait()
            if chunk is not STOP:
                records = self._records_of(chunk)
                left += len(records) if records else 0
        if left:
            self.metrics.records_dropped.labels(reason="shutdown").inc(left)
            log.error(
                "drain timed out: %d records received but not delivered (counted as dropped)", left
            )
        self.sink.stop(max(0.5, deadline - time.monotonic()))
        self.sync_metrics()
        if self.http is not None:
            self.http.stop(1.0)
        self.group.kill(block=True, timeout=2.0)
        if self.udp is not None:
            self.udp.close()
        log.info("%s stopped", self.name)

    # --- metrics and health ------------------------------------------------------------------

    def sync_metrics(self) -> None:
        """Moves the hot path's plain integer counts into the Prometheus counters."""
        receiver, stats, m = self.receiver, self.reassembler.stats, self.metrics
        if receiver is not None:
            for kind in MessageType:
                self._exporter.export(
                    f"rx{kind}",
                    m.packets_received.labels(type=kind.name.lower()),
                    receiver.received[kind],
                )
            self._exporter.export("bytes", m.bytes_received, receiver.bytes)
            self._exporter.export("foreign", m.foreign_packets, receiver.foreign)
            self._exporter.export("startups", m.startups, receiver.startups)
            for reason, count in receiver.malformed.items():
                self._exporter.export(
                    f"malformed.{reason}", m.malformed_packets.labels(reason=reason), count
                )
        for reason, count in stats.malformed.items():
            self._exporter.export(
                f"malformed.{reason}", m.malformed_packets.labels(reason=reason), count
            )
        for reason, count in stats.aborted.items():
            self._exporter.export(
                f"aborted.{reason}", m.chunks_aborted.labels(reason=reason), count
            )
        self._exporter.export("lost", m.packets_lost, stats.lost)
        self._exporter.export("records_delivered", m.records_delivered, self.records_delivered)
        self._exporter.export("resyncs", m.resyncs, stats.resyncs)
        self._exporter.export("late", m.packets_late, stats.late)
        self._exporter.export("orphaned", m.packets_orphaned, stats.orphaned)
        self._exporter.export("delivered", m.chunks_delivered, stats.delivered)
        m.link_up.set(1 if self.link.up else 0)
        m.queue_bytes.set(self.chunks.cost)
        drops = socket_drops(self.udp.sock) if self.udp is not None else None
        if drops is not None:
            self._exporter.export("kernel_drops", m.kernel_drops, drops)

    def healthz(self) -> tuple[int, dict[str, Any]]:
        sink_health = self.sink.health()
        stats = self.reassembler.stats
        degraded = (
            not self.link.up or sink_health.get("sink_ok") is False or self.crashed is not None
        )
        age = self.link.age()
        body = {
            "status": "degraded" if degraded else "ok",
            "role": "egress",
            "name": self.config["name"],
            "link_up": self.link.up,
            "link_down_reason": None if self.link.up else self.link.down_reason,
            "last_packet_age_s": None if age is None else round(age, 3),
            "sender": format_hostport(self.link.pinned) if self.link.pinned else None,
            "expected_seq": self.reassembler.expected,
            "packets_lost": stats.lost,
            "chunks_delivered": stats.delivered,
            "queued_bytes": self.chunks.cost,
            **sink_health,
        }
        return 200, body
