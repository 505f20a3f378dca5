"""The ingress proxy: wires source, framer, transport, heartbeat and HTTP into one Service."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import gevent

from ddc.daemon import DRAIN_TIMEOUT, Deadline, Service
from ddc.http import http_server
from ddc.ingress.filters import FilterChain, build_filter
from ddc.ingress.framer import Ack, Framer, value_of
from ddc.ingress.sources import make_source
from ddc.ingress.transport import Transport
from ddc.logs import ThrottledLog
from ddc.metrics import Exporter, IngressMetrics
from ddc.protocol.fragment import REFERENCE_MAX_PACKETS, ChunkTooLarge, Payload
from ddc.protocol.record import Record
from ddc.protocol.wire import HEADER_SIZE
from ddc.queues import STOP, CostQueue, finish
from ddc.tokens import TokenGuard, optional_token

log = logging.getLogger(__name__)

CHUNK_QUEUE_BYTES = 64 * 1024**2
DROP_LOG_INTERVAL = 1.0  # seconds between two "record queue full" lines


class IngressProxy(Service):
    name = "ingress"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.name = f"ingress {config['name']}"
        transport_config = config["transport"]
        self.metrics = IngressMetrics()
        self.transport = Transport(transport_config, self.metrics, config["name"])
        self.envelope = transport_config["envelope"]
        self.queue_policy = transport_config["queue_policy"]
        self.reference_peer = transport_config["peer"] == "reference"
        self.chunk_limit: int | None = None  # bytes; the v1 limit is the fragmenter's
        if self.reference_peer:
            payload_max = transport_config["max_packet_size"] - HEADER_SIZE
            self.chunk_limit = REFERENCE_MAX_PACKETS * payload_max
        self.records_queue = CostQueue(
            transport_config["queue_size"], transport_config["queue_bytes"]
        )
        self.chunks_queue = CostQueue(CHUNK_QUEUE_BYTES)
        filters = [build_filter(spec, i) for i, spec in enumerate(config["filters"])]
        self.framer = Framer(
            self.envelope,
            transport_config["batch_max_bytes"],
            transport_config["linger_ms"],
            FilterChain(filters, self.metrics),
            self.records_queue,
            self.chunks_queue,
        )
        self.source = make_source(config["source"], self.submit, self.metrics)
        self.paused = False
        routes = {
            ("GET", "/healthz"): self.healthz,
            ("POST", "/admin/pause"): self.admin_pause,
            ("POST", "/admin/resume"): self.admin_resume,
        }
        guard = TokenGuard(
            optional_token(config["admin_token_file"], "ingress.admin_token_file"),
            "[ingress] admin_token_file",
            lambda reason: self.metrics.admin_auth_failures.labels(reason).inc(),
            what="/admin/*",
        )
        self.http = http_server(
            config["http_listen"], self.metrics.registry, routes, self._sync_gauges, guard
        )
        self._source_greenlet: gevent.Greenlet | None = None
        self._framer: gevent.Greenlet | None = None
        self._chunk_sender: gevent.Greenlet | None = None
        self._drop_log = ThrottledLog(log, DROP_LOG_INTERVAL)
        self._exporter = Exporter()
        # records taken into the pipeline, and those that left it (sent, or dropped and counted
        # by the sender): what a stop leaves between the two is counted as dropped
        self._accepted = 0
        self._finished = 0

    # --- the pipeline -----------------------------------------------------------------

    def submit(self, items: Sequence[Record | bytes], ack: Ack | None) -> None:
        """Called by the source: queue records for the framer, per the block/drop policy."""
        if not items and ack is None:
            return
        cost = len(items) or 1
        if items and isinstance(items[0], bytes):  # a source submits all bytes or all Records
            size = sum(map(len, cast(Sequence[bytes], items)))
        else:
            size = sum(len(value_of(item)) for item in items)
        if self.records_queue.put_nowait((items, ack), cost, size):
            self._accepted += len(items)
            return
        self.metrics.buffer_full.labels(stage="records").inc()
        if self.queue_policy == "block":
            self.records_queue.put((items, ack), cost, size=size)
            self._accepted += len(items)
            return
        self.metrics.records_dropped.labels(reason="buffer_full").inc(len(items))
        self._drop_log(
            "buffer_full", "record queue full (queue_policy = drop): dropped %d records", len(items)
        )
        if ack is not None:
            ack()

    def _send_chunks(self) -> None:
        """The one sending greenlet: chunks in order, and the FEC linger between them."""
        transport = self.transport
        while True:
            try:
                item = self.chunks_queue.get(transport.fec_wait())
            except TimeoutError:  # the open FEC group lingered long enough: close it
                transport.flush_fec()
                continue
            if item is STOP:
                return
            chunk, acks, records = item
            if chunk is not None:
                self._send_chunk(chunk, records)
            self._finished += records
            for ack in acks:
                ack()

    def _send_chunk(self, chunk: Payload, records: int) -> None:
        """One chunk out; one that cannot go is dropped for good, counted and said (the caller
        still runs its acks, so Kafka moves on past it)."""
        if self.chunk_limit is not None and len(chunk) > self.chunk_limit:
            reason = "reference_chunk_limit"
            self._drop_log(
                reason,
                "chunk of %d bytes needs more than %d packets, the most a Rust DDC receiver "
                'holds (peer = "reference"): dropped %d records',
                len(chunk),
                REFERENCE_MAX_PACKETS,
                records,
            )
        else:
            try:
                if self.transport.send_chunk(chunk):
                    return
            except ChunkTooLarge as exc:
                log.error("chunk not sent: %s", exc)
            reason = "send_error"
        self.metrics.records_dropped.labels(reason=reason).inc(records)

    def _heartbeat(self) -> None:
        interval = self.config["transport"]["heartbeat_interval"]
        while True:
            gevent.sleep(interval)
            self.transport.send_heartbeat()
            self.transport.refresh_destination()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.transport.open()
        self.source.start()
        if self.http is not None:
            self.http.start()
        self.transport.send_startup()
        self._framer = self.spawn(self.framer.run, name="framer")
        self._chunk_sender = self.spawn(self._send_chunks, name="sender")
        self.spawn(self._heartbeat, name="heartbeat")
        self._source_greenlet = self.spawn(self.source.run, name="source")
        log.info("%s started (envelope %s)", self.name, self.envelope)

    def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Stop reading, send what was read, commit, send Shutdown, close."""
        deadline = Deadline(timeout)
        self.source.stop()
        if self._source_greenlet is not None:
            # a source may drain what it already holds (UDP: the kernel backlog) for up to half
            # the drain time; the other half is for sending it
            self._source_greenlet.join(deadline.left() / 2)
            self._source_greenlet.kill(block=True, timeout=1.0)
        # STOP goes through the framer (which passes it on to the sender) while it runs
        if self._framer is not None and not self._framer.dead:
            finish(self.records_queue, self._framer, deadline.left())
            if self._chunk_sender is not None:
                self._chunk_sender.join(deadline.left())
        else:
            finish(self.chunks_queue, self._chunk_sender, deadline.left())
        for greenlet in (self._framer, self._chunk_sender):  # out of time: nothing more is sent
            if greenlet is not None:
                greenlet.kill(block=True, timeout=1.0)
        self._count_unsent()
        self.source.close(deadline.left(0.5))
        if self.reference_peer:
            log.info('no Shutdown sent (peer = "reference": its receiver would stop for good)')
        else:
            self.transport.send_shutdown()
        if self.http is not None:
            self.http.stop(1.0)
        self.group.kill(block=True, timeout=2.0)
        self.transport.close()
        log.info("%s stopped", self.name)

    def reload(self) -> None:
        """SIGHUP: re-read the authentication key file."""
        self.transport.reload()

    def _count_unsent(self) -> None:
        """Whatever the pipeline still holds after the drain timeout (queued, or in the framer's
        or the sender's hands) is dropped: count it, say it."""
        for _item in self.records_queue.drain():
            pass
        for _item in self.chunks_queue.drain():
            pass
        left = self._accepted - self._finished - self.framer.filters.dropped
        if left:
            self.metrics.records_dropped.labels(reason="shutdown").inc(left)
            log.error("drain timed out: %d records read but not sent (counted as dropped)", left)

    # --- HTTP -----------------------------------------------------------------------------

    def _sync_gauges(self) -> None:
        self.source.health()  # sources export what they count lazily (kernel drops)
        transport, m = self.transport, self.metrics
        self._exporter.export(
            "data_packets", m.packets_sent.labels(type="data"), transport.data_packets
        )
        self._exporter.export("data_bytes", m.bytes_sent, transport.data_bytes)
        self._exporter.export("chunks", m.chunks_sent, transport.chunks)
        if transport.fec is not None:
            self._exporter.export(
                "parity_packets", m.packets_sent.labels(type="parity"), transport.parity_packets
            )
            self._exporter.export("parity_bytes", m.bytes_sent, transport.parity_bytes)
        self.metrics.queue_depth.labels(stage="records").set(self.records_queue.cost)
        self.metrics.queue_depth.labels(stage="chunks").set(self.chunks_queue.cost)
        self.metrics.seq.set(self.transport.sequence.next)
        self.metrics.paused.set(1 if self.paused else 0)

    def healthz(self) -> tuple[int, dict[str, Any]]:
        source_health = self.source.health()
        fec = self.transport.fec
        degraded = (
            self.crashed is not None
            or source_health.get("source_ok") is False
            or self.transport.failing is not None
        )
        body = {
            "status": "degraded" if degraded else "ok",
            "role": "ingress",
            "name": self.config["name"],
            "paused": self.paused,
            "send_error": self.transport.failing,
            "seq": self.transport.sequence.next,
            "fec": None
            if fec is None
            else {"data": fec.k, "parity": fec.m, "interleave": fec.interleave},
            "auth_key_id": None if self.transport.auth is None else self.transport.auth.key_id,
            "queued_records": self.records_queue.cost,
            "queued_chunk_bytes": self.chunks_queue.cost,
            **source_health,
        }
        return 200, body

    def admin_pause(self) -> tuple[int, dict[str, Any]]:
        if not self.paused:
            log.warning("paused by /admin/pause")
            self.paused = True
            self.source.pause()
        return 200, {"paused": True}

    def admin_resume(self) -> tuple[int, dict[str, Any]]:
        if self.paused:
            log.warning("resumed by /admin/resume")
            self.paused = False
            self.source.resume()
        return 200, {"paused": False}
