"""The egress proxy: receiver, deliverer, link watch and HTTP wired into one Service."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import gevent

from ddc.daemon import DRAIN_TIMEOUT, Deadline, Service
from ddc.egress.auth_gate import AuthGate
from ddc.egress.deliver import Deliverer
from ddc.egress.gaps import GapTracker
from ddc.egress.link import LinkState
from ddc.egress.loss import LossWindow
from ddc.egress.receiver import Receiver
from ddc.egress.sinks import make_sink
from ddc.egress.spool import SpoolError, open_spool, spool_dir
from ddc.egress.spool.watch import SpoolWatch
from ddc.errors import ConfigError
from ddc.http import http_server
from ddc.metrics import EgressMetrics, Exporter
from ddc.netio import UdpSocket, socket_drops
from ddc.protocol.auth_session import REASONS, Expectations
from ddc.protocol.reassembly import Reassembler
from ddc.protocol.wire import MAX_DATAGRAM, MessageType
from ddc.units import format_hostport

log = logging.getLogger(__name__)

FEC_TICK = 0.01  # the FEC timer's longest sleep while the hold waits for a repair
FEC_IDLE_TICK = 0.05  # ... and while it holds nothing
LOSS_SAMPLE_INTERVAL = 1.0


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
        self.sink = make_sink(config["sink"], self.metrics)
        self.sink.owner = self
        try:
            self.spool = open_spool(config["spool"], config["name"])
        except SpoolError as exc:
            raise ConfigError("egress.spool.dir", str(exc)) from exc
        self.deliverer = Deliverer(transport["envelope"], self.spool, self.sink, self.metrics)
        self.spool_watch = SpoolWatch(self.spool, self.deliverer, self.metrics)
        self.gaps = GapTracker()
        self.deliverer.gaps = self.gaps
        self.reassembler.on_loss = self.gaps.sequence_lost
        self.reassembler.on_reset = self._session_reset
        self.auth: AuthGate | None = None
        if transport["auth_keys"]:
            self.auth = AuthGate(
                transport["auth_keys"],
                Expectations(transport["envelope"], MAX_DATAGRAM, fec=True),
                transport["max_clock_skew"],
                spool_dir(config["spool"], config["name"]),
            )
            for reason in REASONS:  # every reason shows, at 0, from the start
                self.metrics.auth_failures.labels(reason=reason)
        self.udp: UdpSocket | None = None
        self.receiver: Receiver | None = None
        self.http = http_server(
            config["http_listen"],
            self.metrics.registry,
            {("GET", "/healthz"): self.healthz, ("GET", "/gaps"): self.gaps_report},
            self.sync_metrics,
        )
        self._exporter = Exporter()
        self.loss = LossWindow()
        self._deliver: gevent.Greenlet | None = None
        self._spool_upkeep: gevent.Greenlet | None = None
        self._intake: list[gevent.Greenlet] = []  # the receiver and the link watch

    # --- pipeline -----------------------------------------------------------------------------

    def _session_reset(self, reason: str) -> None:
        # the gap tracker may claim a partition's lost first batches only in a session it saw
        # start: nothing of an earlier session may still be waiting for delivery (a store-and-
        # forward spool counts too)
        if reason == "startup" and self.spool.pending == 0:
            self.gaps.session_started()

    def _watch_link(self) -> None:
        interval = min(0.5, self.link.timeout / 4) if self.link.timeout > 0 else 0.5
        while True:
            gevent.sleep(interval)
            cause = self._auth_failing()
            if self.link.check_timeout(cause=cause):
                reason = "heartbeat_timeout" if cause is None else "auth_failing"
                self.metrics.link_interruptions.labels(reason=reason).inc()
            elif cause is not None:
                self.link.refused_only(cause)
            self.metrics.link_up.set(1 if self.link.up else 0)

    def _auth_failing(self) -> str | None:
        """ "authentication failing (REASON)" while only refused datagrams arrive."""
        if self.auth is None or self.receiver is None:
            return None
        return self.auth.failing(sum(self.receiver.received))

    def reload(self) -> None:
        """SIGHUP: re-read the authentication key file."""
        if self.auth is not None:
            self.auth.reload()

    def _fec_timer(self) -> None:
        """The FEC hold's deadline and group expiry; samples the loss ratio once a second."""
        receiver = self.receiver
        assert receiver is not None
        fec = receiver.fec
        next_sample = 0.0
        while True:
            deadline = fec.deadline
            now = time.monotonic()
            if deadline is None:
                gevent.sleep(FEC_IDLE_TICK)
            else:
                gevent.sleep(min(FEC_TICK, max(0.001, deadline - now)))
            now = time.monotonic()
            receiver.poll(now)
            if now >= next_sample:
                next_sample = now + LOSS_SAMPLE_INTERVAL
                self.loss.sample(now, *receiver.loss_counts())

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        transport = self.config["transport"]
        self.udp = UdpSocket.bound(transport["listen"], transport["receive_buffer"])
        gro = self.udp.enable_gro()
        self.receiver = Receiver(
            self.udp, self.link, self.reassembler, self.deliverer.enqueue, auth=self.auth
        )
        self.sink.start()
        if self.http is not None:
            self.http.start()
        self._deliver = self.spawn(self.deliverer.run, name="deliver")
        self._spool_upkeep = self.spawn(self.spool_watch.run, name="spool")
        self._intake = [
            self.spawn(self._watch_link, name="link-watch"),
            self.spawn(self.receiver.run, name="receiver"),
            self.spawn(self._fec_timer, name="fec-timer"),
        ]
        log.info(
            "%s listening on %s, UDP GRO %s",
            self.name,
            format_hostport(self.udp.getsockname()),
            "on" if gro else "off (this kernel has none: one system call per datagram)",
        )

    def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Stop receiving, let the sink confirm what the spool holds within `timeout` (not while
        the sink reports its target down), stop it, close the spool (a disk spool keeps what is
        left for the next start)."""
        deadline = Deadline(timeout)
        for greenlet in self._intake:
            greenlet.kill(block=True, timeout=1.0)
        if self.receiver is not None:
            self.receiver.drain()  # what the FEC hold still waited with goes to reassembly
        if not (self.spool.durable and self.sink.health().get("sink_ok") is False):
            self.deliverer.wait_idle(deadline.left())  # a target that is down: keep it spooled
        self.deliverer.stopping = True
        for task in (self._deliver, self._spool_upkeep):
            if task is not None:
                task.kill(block=True, timeout=1.0)
        self.sink.stop(deadline.left(0.5))
        self.deliverer.finish()
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
            if self.auth is not None:
                for reason, count in self.auth.failures.items():
                    self._exporter.export(
                        f"auth.{reason}", m.auth_failures.labels(reason=reason), count
                    )
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
        self._exporter.export("records_lost", m.records_lost, self.gaps.records_lost)
        self._exporter.export(
            "records_delivered", m.records_delivered, self.deliverer.records_delivered
        )
        self._exporter.export("resyncs", m.resyncs, stats.resyncs)
        self._exporter.export("claims_refused", m.heartbeat_claims_refused, stats.claims_refused)
        self._exporter.export("late", m.packets_late, stats.late)
        self._exporter.export("orphaned", m.packets_orphaned, stats.orphaned)
        self._exporter.export("delivered", m.chunks_delivered, stats.delivered)
        if receiver is not None:
            fec, now = receiver.fec, time.monotonic()
            self._exporter.export("fec_recovered", m.fec_recovered, receiver.fec_recovered())
            self._exporter.export(
                "fec_unrecoverable", m.fec_unrecoverable_groups, fec.stats.unrecoverable_groups
            )
            for reason, count in fec.stats.malformed.items():
                self._exporter.export(
                    f"malformed.{reason}", m.malformed_packets.labels(reason=reason), count
                )
            margin = fec.decoder.repair_margin(now)
            m.fec_repair_margin.set(math.nan if margin is None else margin)
            ratio = self.loss.ratio()
            m.packet_loss_ratio.set(math.nan if ratio is None else ratio)
        m.link_up.set(1 if self.link.up else 0)
        m.queue_bytes.set(self.spool.bytes)
        self.spool_watch.export()
        drops = socket_drops(self.udp.sock) if self.udp is not None else None
        if drops is not None:
            self._exporter.export("kernel_drops", m.kernel_drops, drops)

    def gaps_report(self) -> tuple[int, dict[str, Any]]:
        return 200, {"name": self.config["name"], **self.gaps.report()}

    def healthz(self) -> tuple[int, dict[str, Any]]:
        sink_health = self.sink.health()
        stats = self.reassembler.stats
        degraded = (
            not self.link.up
            or sink_health.get("sink_ok") is False
            or self.crashed is not None
            or self.spool_watch.over()
            or (self.auth is not None and self.auth.mismatch is not None)
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
            "queued_bytes": self.spool.bytes,
            **self._fec_health(),
            **(self.auth.health() if self.auth is not None else {}),
            **sink_health,
            **self.spool_watch.health(),
        }
        return 200, body

    def _fec_health(self) -> dict[str, Any]:
        receiver = self.receiver
        if receiver is None:
            return {}
        decoder, stats = receiver.fec.decoder, receiver.fec.stats
        seen = decoder.seen
        ratio = self.loss.ratio()
        return {
            "fec": None
            if seen is None
            else {"data": seen[0], "parity": seen[1], "interleave": seen[2]},
            "fec_recovered": receiver.fec_recovered(),
            "fec_unrecoverable_groups": stats.unrecoverable_groups,
            "fec_repair_margin": decoder.repair_margin(time.monotonic()),
            "packet_loss_ratio": None if ratio is None else round(ratio, 6),
        }
