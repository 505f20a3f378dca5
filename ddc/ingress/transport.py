"""The ingress's UDP side: sequence numbers, fragmentation, pacing, control bursts."""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from ddc.netio import UdpSocket, family_of, set_send_buffer
from ddc.protocol.fragment import Sequence, split
from ddc.protocol.wire import HEADER, HEADER_SIZE, MessageType, encode_header
from ddc.ratelimit import make_pacer

log = logging.getLogger(__name__)

SEND_RETRIES = 3
# pause between the StartUp burst and the first data, so no StartUp can trail behind data
STARTUP_SETTLE = 0.05


class Transport:
    """Sends chunks and control packets to the egress; one sequence space per process run."""

    def __init__(self, config: dict[str, Any], metrics: Any) -> None:
        self.destination = config["destination"]
        self.bind = config["bind"]
        self.payload_max = config["max_packet_size"] - HEADER_SIZE
        self.config = config
        self.metrics = metrics
        self.sequence = Sequence()
        self.handed_over = 0  # the seq after the last packet given to the kernel
        self.pacer = make_pacer(config["rate"], config["send_delay_ms"])
        self.udp: UdpSocket | None = None
        self._data_packets = metrics.packets_sent.labels(type="data")
        self._last_error_log = 0.0

    def open(self) -> None:
        self.udp = UdpSocket(family_of(self.destination[0]))
        set_send_buffer(self.udp.sock, self.config["send_buffer"])
        self.udp.sock.bind(self.bind)
        log.info(
            "sending to %s:%s from %s:%s, max packet %d bytes",
            *self.destination, *self.udp.getsockname()[:2], self.payload_max + HEADER_SIZE,
        )  # fmt: skip

    def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
            self.udp = None

    def _send(self, buffers: list) -> bool:
        for attempt in range(SEND_RETRIES):
            try:
                self.udp.sendmsg(buffers, self.destination)
                return True
            except OSError as exc:
                self.metrics.send_errors.inc()
                now = time.monotonic()
                if now - self._last_error_log > 1.0:
                    log.error(
                        "send to %s:%s failed (%s), attempt %d", *self.destination, exc, attempt + 1
                    )
                    self._last_error_log = now
                gevent.sleep(0.001 * (attempt + 1))
        return False

    def send_chunk(self, chunk: bytes | bytearray | memoryview) -> int:
        """Fragments and sends one chunk; the number of packets it took."""
        take = self.pacer.take
        send = self._send
        pack = HEADER.pack
        sequence = self.sequence
        packets = 0
        sent_bytes = 0
        for kind, remaining, payload in split(chunk, self.payload_max):
            size = HEADER_SIZE + len(payload)
            take(size)
            seq = sequence.take()
            # a failed packet still consumed its seq: the egress counts it as lost
            if send([pack(kind, seq, len(payload), remaining), payload]):
                sent_bytes += size
            # HeartBeats announce only handed-over seqs: one sent while this packet waited for
            # socket space must not make the egress count it as lost
            self.handed_over = sequence.next
            packets += 1
        self._data_packets.inc(packets)
        self.metrics.bytes_sent.inc(sent_bytes)
        self.metrics.chunks_sent.inc()
        return packets

    def _control(self, kind: MessageType, seq: int, count: int) -> None:
        header = encode_header(kind, seq, 0, 0)
        counter = self.metrics.packets_sent.labels(type=kind.name.lower())
        for index in range(count):
            if self._send([header]):
                counter.inc()
                self.metrics.bytes_sent.inc(HEADER_SIZE)
            if index % 50 == 49:
                gevent.sleep(0.0005)  # a burst, but not faster than a receiver's buffer can take

    def send_startup(self) -> None:
        self.sequence = Sequence(0)
        self.handed_over = 0
        self._control(MessageType.STARTUP, 0, self.config["startup_burst"])
        gevent.sleep(STARTUP_SETTLE)
        log.info("StartUp burst sent (%d packets)", self.config["startup_burst"])

    def send_heartbeat(self) -> None:
        self._control(MessageType.HEARTBEAT, self.handed_over, 1)

    def send_shutdown(self) -> None:
        self._control(MessageType.SHUTDOWN, self.handed_over, self.config["shutdown_burst"])
        log.info("Shutdown burst sent at seq %d", self.handed_over)
