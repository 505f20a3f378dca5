"""Prometheus metrics of the proxies, each daemon with its own registry (names: docs/http-api.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Exporter:
    """Moves plain integer counts kept on a hot path into Prometheus counters, as deltas."""

    def __init__(self) -> None:
        self._exported: dict[str, float] = {}

    def export(self, name: str, counter: Counter, value: float) -> None:
        delta = value - self._exported.get(name, 0)
        if delta > 0:
            counter.inc(delta)
            self._exported[name] = value


class IngressMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records = Counter("ddc_ingress_records", "Records read from the source", registry=r)
        self.records_filtered = Counter(
            "ddc_ingress_records_filtered", "Records dropped by a filter", ["filter"], registry=r
        )
        self.packets_sent = Counter(
            "ddc_ingress_packets_sent", "Datagrams sent", ["type"], registry=r
        )
        self.bytes_sent = Counter("ddc_ingress_bytes_sent", "Datagram bytes sent", registry=r)
        self.chunks_sent = Counter("ddc_ingress_chunks_sent", "Chunks sent", registry=r)
        self.buffer_full = Counter(
            "ddc_ingress_buffer_full",
            "Times a pipeline queue was full (policy block: waited; drop: records dropped)",
            ["stage"],
            registry=r,
        )
        self.records_dropped = Counter(
            "ddc_ingress_records_dropped", "Records dropped, by reason", ["reason"], registry=r
        )
        self.send_errors = Counter("ddc_ingress_send_errors", "Socket send errors", registry=r)
        self.source_errors = Counter(
            "ddc_ingress_source_errors", "Source errors", ["kind"], registry=r
        )
        self.queue_depth = Gauge("ddc_ingress_queue_depth", "Items waiting", ["stage"], registry=r)
        self.paused = Gauge("ddc_ingress_paused", "1 while paused by /admin/pause", registry=r)
        self.seq = Gauge("ddc_ingress_sequence", "Next sequence number to send", registry=r)
        self.source_kernel_drops = Counter(
            "ddc_ingress_source_kernel_drops",
            "Datagrams the kernel dropped on the UDP source socket (full buffer), from /proc",
            registry=r,
        )
        self.offsets_committed = Counter(
            "ddc_ingress_offsets_committed", "Kafka offset commits", registry=r
        )
        self.source_pending_bytes = Gauge(
            "ddc_ingress_source_pending_bytes",
            "Bytes of unfinished records the TCP source holds (bounded by max_pending_bytes)",
            registry=r,
        )
        self.kafka_batch_errors = Counter(
            "ddc_ingress_kafka_batch_errors",
            "Kafka record batches the source could not decode (codec library missing, "
            "decompression failed, CRC mismatch), by codec; each retry counts again",
            ["codec"],
            registry=r,
        )
        self.admin_auth_failures = Counter(
            "ddc_ingress_admin_auth_failures",
            "Refused /admin/* requests, by reason (no_token_configured, missing, bad_token)",
            ["reason"],
            registry=r,
        )


class EgressMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.packets_received = Counter(
            "ddc_egress_packets_received", "Datagrams received", ["type"], registry=r
        )
        self.bytes_received = Counter("ddc_egress_bytes_received", "Datagram bytes", registry=r)
        self.packets_lost = Counter(
            "ddc_egress_packets_lost", "Packets missing from the sequence", registry=r
        )
        self.packets_late = Counter(
            "ddc_egress_packets_late",
            "Packets behind the expected sequence (late/duplicate)",
            registry=r,
        )
        self.packets_orphaned = Counter(
            "ddc_egress_packets_orphaned",
            "Data packets of a chunk whose start was lost, dropped while resyncing",
            registry=r,
        )
        self.chunks_delivered = Counter(
            "ddc_egress_chunks_delivered", "Complete chunks handed to the sink", registry=r
        )
        self.chunks_aborted = Counter(
            "ddc_egress_chunks_aborted",
            "Chunks abandoned (loss, restart, malformed)",
            ["reason"],
            registry=r,
        )
        self.malformed_packets = Counter(
            "ddc_egress_malformed_packets",
            "Datagrams that are not valid DDC v1",
            ["reason"],
            registry=r,
        )
        self.foreign_packets = Counter(
            "ddc_egress_foreign_packets",
            "Datagrams from a sender other than the pinned one",
            registry=r,
        )
        self.records_delivered = Counter(
            "ddc_egress_records_delivered", "Records handed to the sink", registry=r
        )
        self.records_dropped = Counter(
            "ddc_egress_records_dropped", "Records dropped, by reason", ["reason"], registry=r
        )
        self.envelope_errors = Counter(
            "ddc_egress_envelope_errors", "Chunks whose envelope failed to decode", registry=r
        )
        self.link_up = Gauge("ddc_egress_link_up", "1 while the link is up", registry=r)
        self.link_interruptions = Counter(
            "ddc_egress_link_interruptions", "Times the link went down", ["reason"], registry=r
        )
        self.startups = Counter("ddc_egress_startups", "StartUp resyncs accepted", registry=r)
        self.resyncs = Counter(
            "ddc_egress_resyncs",
            "Sequence restarts followed without a StartUp (sender restarted, burst lost)",
            registry=r,
        )
        self.heartbeat_claims_refused = Counter(
            "ddc_egress_heartbeat_claims_refused",
            "HeartBeats too far ahead of the stream never confirmed (not counted as loss)",
            registry=r,
        )
        self.sink_errors = Counter("ddc_egress_sink_errors", "Sink delivery errors", registry=r)
        self.kernel_drops = Counter(
            "ddc_egress_kernel_drops",
            "Datagrams the kernel dropped on the receive socket (full buffer), from /proc; "
            "they also show as lost packets",
            registry=r,
        )
        self.queue_bytes = Gauge("ddc_egress_queue_bytes", "Bytes waiting for the sink", registry=r)
        # FEC (wire v2): repair on the receiving side
        self.fec_recovered = Counter(
            "ddc_egress_fec_recovered_packets", "Data packets restored from FEC parity", registry=r
        )
        self.fec_unrecoverable_groups = Counter(
            "ddc_egress_fec_unrecoverable_groups",
            "FEC groups that lost more packets than they had parity for",
            registry=r,
        )
        self.fec_repair_margin = Gauge(
            "ddc_egress_fec_repair_margin",
            "Parity packets per group minus the worst loss in any group over the last minute "
            "(< 0: data was lost; NaN: no FEC groups in that minute)",
            registry=r,
        )
        self.packet_loss_ratio = Gauge(
            "ddc_egress_packet_loss_ratio",
            "Packets the link lost before FEC repair over the last minute, as a fraction of those "
            "sent (NaN: no traffic)",
            registry=r,
        )
        self.records_lost = Counter(
            "ddc_egress_records_lost",
            "Records read from Kafka that the ingress sent and that never arrived (GET /gaps)",
            registry=r,
        )
        self.spool_bytes = Gauge(
            "ddc_egress_spool_bytes", "Bytes the spool's files (or memory) hold", registry=r
        )
        self.spool_chunks = Gauge(
            "ddc_egress_spool_chunks",
            "Chunks in the spool not yet confirmed by the target (a chunk is one record, or "
            "one batch of records with the records envelope)",
            registry=r,
        )
        self.spool_usage = Gauge(
            "ddc_egress_spool_usage_ratio", "Spool bytes / [egress.spool] max_bytes", registry=r
        )
        self.spool_oldest_age = Gauge(
            "ddc_egress_spool_oldest_age_seconds",
            "How long the oldest unconfirmed chunk has waited",
            registry=r,
        )
        self.spool_appended = Counter(
            "ddc_egress_spool_appended_chunks", "Chunks appended to the spool", registry=r
        )
        self.spool_acked = Counter(
            "ddc_egress_spool_acked_chunks",
            "Chunks released from the spool by the target's confirmation (rate = drain rate)",
            registry=r,
        )
        self.spool_dropped = Counter(
            "ddc_egress_spool_dropped_chunks",
            "Chunks dropped by the spool, by reason (drop_newest, drop_oldest, too_large, "
            "write_error, torn, corrupt)",
            ["reason"],
            registry=r,
        )
        self.auth_failures = Counter(
            "ddc_egress_auth_failures",
            "Datagrams refused by packet authentication, by reason (missing, unknown_key, "
            "bad_tag, replay, stale_session)",
            ["reason"],
            registry=r,
        )
