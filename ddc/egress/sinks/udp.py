"""UDP sink: each record's value as one datagram to `target`."""

from __future__ import annotations

import logging
from typing import Any

from ddc.egress.sinks.base import Done, TargetSink
from ddc.logs import ThrottledLog
from ddc.metrics import EgressMetrics
from ddc.netio import UdpSocket, family_of, set_send_buffer
from ddc.protocol.record import Record
from ddc.protocol.wire import MAX_DATAGRAM

log = logging.getLogger(__name__)


class UdpSink(TargetSink):
    def __init__(self, config: dict[str, Any], metrics: EgressMetrics) -> None:
        super().__init__(config, metrics)
        self.udp: UdpSocket | None = None
        self._too_large = metrics.records_dropped.labels(reason="too_large_for_udp")
        self._send_failed = metrics.records_dropped.labels(reason="send_error")
        self._log = ThrottledLog(log, 5.0)

    def start(self) -> None:
        self.udp = UdpSocket(family_of(self.target[0]))
        set_send_buffer(self.udp.sock, self.config["send_buffer"])

    def send(self, records: list[Record], done: Done) -> None:
        """Settled once sent (UDP confirms nothing more); a record that does not fit a datagram
        or whose send fails is dropped and counted."""
        assert self.udp is not None, "start() opens the socket before send()"
        sendto = self.udp.sendto
        target = self.target
        for record in records:
            value = record.value or b""
            if len(value) > MAX_DATAGRAM:
                self._too_large.inc()
                self._log(
                    "too_large",
                    "record of %d bytes does not fit a UDP datagram; dropped",
                    len(value),
                )
                continue
            try:
                sendto(value, target)
            except OSError as exc:
                self._send_failed.inc()
                self.metrics.sink_errors.inc()
                self._log(
                    "send_error",
                    "UDP send to %s:%s failed: %s; record dropped",
                    target[0],
                    target[1],
                    exc,
                )
        done()

    def stop(self, timeout: float) -> None:
        if self.udp is not None:
            self.udp.close()
            self.udp = None
