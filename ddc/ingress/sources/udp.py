"""UDP source: each datagram is one record.

Stopping drains the socket: datagrams the kernel already holds when stop() is called are read
and submitted like any other (until the backlog is empty or the proxy's drain budget ends);
whatever is still in the socket buffer at close() is read, counted as dropped
(`records_dropped{reason="shutdown"}`) and logged, so nothing accepted by the kernel goes
uncounted.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from gevent import GreenletExit

from ddc.cooperate import HubTurn
from ddc.ingress.sources.base import Source, Submit
from ddc.metrics import IngressMetrics
from ddc.netio import UdpSocket, socket_drops
from ddc.protocol.record import Record

log = logging.getLogger(__name__)

# datagrams read without yielding, submitted together
BURST = 512
BURST_BYTES = 1024 * 1024
# A read that emptied the socket after fewer than COALESCE_BELOW datagrams waits COALESCE
# seconds before the next: at moderate rates every datagram had cost a wake-up of its own (the
# hub's poll, two greenlet switches), most of the ingress's CPU per record. The kernel holds
# what arrives meanwhile (1 ms of a 1 Gbit/s line is 125 KB); the first datagram after a quiet
# spell is read at once, so only records arriving right behind another wait up to COALESCE.
COALESCE = 0.001
COALESCE_BELOW = 64
DISCARD_LIMIT = 1.0  # seconds close() spends counting what is left in the socket buffer


class UdpSource(Source):
    def __init__(self, config: dict[str, Any], submit: Submit, metrics: IngressMetrics) -> None:
        super().__init__(config, submit, metrics)
        self.udp: UdpSocket | None = None
        self._stopped = False
        self._draining = False  # stop() called: read what the kernel holds, then return
        self._runner: Any = None  # the greenlet running run()
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
        hub_turn = HubTurn()
        while not self._stopped:
            batch: list[Record | bytes] = []
            size = 0
            emptied = False
            if not self._draining:
                self.running.wait()
                self._receiving = True
                try:
                    first = udp.recv(65536)
                finally:
                    self._receiving = False
                if not self.running.is_set():  # paused while waiting: the rest stays queued
                    self.running.wait()
                batch.append(first)
                size = len(first)
            try:
                while len(batch) < BURST and size < BURST_BYTES:
                    data = raw_recv(65536)
                    batch.append(data)
                    size += len(data)
            except BlockingIOError:
                if self._draining:  # the backlog is read: this is the last batch
                    self._stopped = True
                emptied = True
            if not batch:
                break
            records_counter.inc(len(batch))
            try:
                self.submit(batch, None)
            except GreenletExit:  # killed while the pipeline was full: these were read
                self._dropped(len(batch), "read but not queued when the drain time ran out")
                raise
            if emptied and len(batch) < COALESCE_BELOW and not self._stopped:
                gevent.sleep(COALESCE)  # the framer and sender run meanwhile
            else:
                hub_turn()  # let the framer and sender run: a busy socket must not starve them

    def health(self) -> dict[str, Any]:
        drops = socket_drops(self.udp.sock) if self.udp is not None else None
        if drops is not None:
            self.metrics.source_kernel_drops.inc(max(0, drops - self._drops_exported))
            self._drops_exported = max(drops, self._drops_exported)
        return {"source_kernel_drops": drops}

    def stop(self) -> None:
        self.running.set()
        # waiting for a datagram: the socket is empty, so wake it and stop; otherwise let it
        # read what the kernel holds (the proxy kills it when its drain budget ends)
        if self._receiving and self._runner is not None and self._runner is not gevent.getcurrent():
            self._stopped = True
            self._runner.kill(block=False)
        else:
            self._draining = True

    def close(self, timeout: float) -> None:
        if self.udp is None:
            return
        self._stopped = True
        left = self._discard_backlog(min(timeout, DISCARD_LIMIT))
        if left:
            self.metrics.records.inc(left)
            self._dropped(left, "left in the socket buffer at shutdown")
        self.health()  # the kernel's own drop count, exported one last time
        self.udp.close()
        self.udp = None

    def _discard_backlog(self, limit: float) -> int:
        """Read and count what the kernel still holds (for at most `limit` seconds)."""
        assert self.udp is not None
        recv = self.udp.sock.recv
        count = 0
        deadline = time.monotonic() + limit
        try:
            while True:
                recv(65536)
                count += 1
                if count % 4096 == 0 and time.monotonic() > deadline:
                    break
        except BlockingIOError:
            pass
        return count

    def _dropped(self, count: int, why: str) -> None:
        self.metrics.records_dropped.labels(reason="shutdown").inc(count)
        log.error("UDP source: %d datagrams %s (counted as dropped)", count, why)
