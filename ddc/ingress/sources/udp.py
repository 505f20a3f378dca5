"""UDP source: each datagram is one record."""

from __future__ import annotations

import logging
from typing import Any

import gevent

from ddc.ingress.sources.base import Source, Submit
from ddc.metrics import IngressMetrics
from ddc.netio import UdpSocket, socket_drops

log = logging.getLogger(__name__)

# datagrams read without yielding, submitted together
BURST = 512
BURST_BYTES = 1024 * 1024


class UdpSource(Source):
    def __init__(self, config: dict[str, Any], submit: Submit, metrics: IngressMetrics) -> None:
        super().__init__(config, submit, metrics)
        self.udp: UdpSocket | None = None
        self._stopped = False
        self._runner: gevent.Greenlet | None = None
        self._receiving = False
        self._drops_exported = 0

    def start(self) -> None:
        self.udp = UdpSocket.bound(self.config["listen"], self.config["receive_buffer"])
        log.info("UDP source listening on %s:%s", *self.udp.getsockname()[:2])

    def run(self) -> None:
        runner, udp = gevent.getcurrent(), self.udp
        assert isinstance(runner, gevent.Greenlet), "run() is spawned by the proxy"
        assert udp is not None, "start() binds the socket before run()"
        self._runner = runner
        raw_recv = udp.sock.recv
        records_counter = self.metrics.records
        while not self._stopped:
            self.running.wait()
            self._receiving = True
            try:
                first = udp.recv(65536)
            finally:
                self._receiving = False
            batch = [first]
            size = len(first)
            try:
                while len(batch) < BURST and size < BURST_BYTES:
                    data = raw_recv(65536)
                    batch.append(data)
                    size += len(data)
            except BlockingIOError:
                pass
            records_counter.inc(len(batch))
            self.submit(batch, None)
            gevent.sleep(0)  # let the framer and sender run: a busy socket must not starve them

    def health(self) -> dict[str, Any]:
        drops = socket_drops(self.udp.sock) if self.udp is not None else None
        if drops is not None:
            self.metrics.source_kernel_drops.inc(max(0, drops - self._drops_exported))
            self._drops_exported = max(drops, self._drops_exported)
        return {"source_kernel_drops": drops}

    def stop(self) -> None:
        self._stopped = True
        self.running.set()
        # waiting for a datagram: wake it; in the middle of a submit: let it finish the batch
        if self._receiving and self._runner is not None and self._runner is not gevent.getcurrent():
            self._runner.kill(block=False)

    def close(self, timeout: float) -> None:
        if self.udp is not None:
            self.udp.close()
            self.udp = None
