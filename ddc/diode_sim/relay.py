"""DiodeSim: the relay's sockets, lifecycle and loops (see the package docstring)."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import gevent
from gevent import socket as gsocket

from ddc.daemon import Service
from ddc.diode_sim.config import SimConfig
from ddc.diode_sim.counters import Counters, format_counters
from ddc.diode_sim.impairment import Impairments
from ddc.diode_sim.ratecap import RateCap
from ddc.diode_sim.report import print_stats, registry, routes
from ddc.errors import ConfigError
from ddc.http import HttpServer
from ddc.logs import ThrottledLog
from ddc.netio import RECEIVE_SIZE, set_receive_buffer, set_send_buffer, socket_drops
from ddc.units import format_hostport

log = logging.getLogger(__name__)

YIELD_EVERY = 256  # datagrams handled between cooperative yields under sustained load
LOG_INTERVAL = 5.0  # at most one line per kind of repeated send problem this often


def _resolve(address: tuple[str, int], key: str) -> tuple[int, tuple[Any, ...]]:
    host, port = address
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(key, f"cannot resolve {host!r}: {exc}") from None
    return family, sockaddr


def _bind(sock: socket.socket, address: tuple[Any, ...], key: str) -> None:
    try:
        sock.bind(address)
    except OSError as exc:
        raise ConfigError(
            key, f"cannot bind {format_hostport(address[:2])}: {exc.strerror}"
        ) from None


class DiodeSim(Service):
    """The relay; start()/stop(timeout). Runs in-process under gevent without monkey patching."""

    name = "diode-sim"

    def __init__(self, config: SimConfig) -> None:
        super().__init__()
        self.config = config
        self.stats = Counters()
        self.impairments = Impairments(config)
        self.rate_cap = RateCap(config.rate, config.buffer) if config.rate else None
        self.started_at = 0.0
        self._rx: socket.socket | None = None
        self._tx: socket.socket | None = None
        self._relay: gevent.Greenlet | None = None
        self._pacer: gevent.Greenlet | None = None
        self._http: HttpServer | None = None
        self._held: tuple[bytes, int] | None = None  # (datagram, copies) held for reordering
        self._final_rx_drops: int | None = None
        self._send_problems = ThrottledLog(log, LOG_INTERVAL, logging.WARNING)

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The listening address (with the real port when 0 was asked for)."""
        assert self._rx is not None, "not started"
        return self._rx.getsockname()[:2]

    @property
    def source_address(self) -> tuple[str, int]:
        """The address forwarded datagrams come from (what an egress sees as the sender)."""
        assert self._tx is not None, "not started"
        return self._tx.getsockname()[:2]

    @property
    def http_address(self) -> tuple[str, int] | None:
        return self._http.address[:2] if self._http else None

    def start(self) -> None:
        cfg = self.config
        rx_family, listen = _resolve(cfg.listen, "listen")
        tx_family, forward = _resolve(cfg.forward, "forward")
        self._rx = rx = gsocket.socket(rx_family, socket.SOCK_DGRAM)
        self._tx = tx = gsocket.socket(tx_family, socket.SOCK_DGRAM)
        try:
            set_receive_buffer(rx, cfg.receive_buffer)
            set_send_buffer(tx, cfg.send_buffer)
            _bind(rx, listen, "listen")
            if cfg.forward_bind is not None:
                _bind(tx, _resolve(cfg.forward_bind, "forward_bind")[1], "forward_bind")
            # Connected: send() skips the per-datagram route lookup (about 15% of the cost), and
            # the socket still only ever sends, to the one forward address.
            try:
                tx.connect(forward)
            except OSError as exc:
                where = format_hostport(cfg.forward)
                raise ConfigError("forward", f"cannot send to {where}: {exc.strerror}") from None
            if cfg.http_listen is not None:
                self._http = HttpServer(cfg.http_listen, registry(self), routes(self))
                try:
                    self._http.start()
                except OSError as exc:
                    where = format_hostport(cfg.http_listen)
                    raise ConfigError("http", f"cannot bind {where}: {exc.strerror}") from None
        except BaseException:
            self._close()
            raise
        self.started_at = time.monotonic()
        relay = self._relay_impaired if cfg.impaired else self._relay_plain
        self._relay = self.spawn(relay, name="relay")
        if self.rate_cap is not None:
            self._pacer = self.spawn(self.rate_cap.run, self._send, name="pacer")
        if cfg.stats_interval:
            self.spawn(print_stats, self, cfg.stats_interval, name="stats")
        log.info(
            "diode-sim %s -> %s (seed %s%s)",
            format_hostport(self.address),
            format_hostport(cfg.forward),
            cfg.seed,
            cfg.describe(),
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop receiving, forward what is held or queued (within timeout), close."""
        deadline = time.monotonic() + timeout
        if self._relay is not None:
            self._relay.kill()
            self._relay = None
            self._relay_pending(deadline)
        if self._held is not None:
            held, copies = self._held
            self._held = None
            self._emit(held, copies)
        if self._pacer is not None and self.rate_cap is not None:
            self.rate_cap.drain()
            self._pacer.join(max(0.0, deadline - time.monotonic()))
            self._pacer.kill()
            for datagram in self.rate_cap.take_all():
                self.stats.drop("shutdown", datagram)
        self.group.kill(timeout=max(0.1, deadline - time.monotonic()))
        if self._http is not None:
            self._http.stop(max(0.1, deadline - time.monotonic()))
        self._final_rx_drops = socket_drops(self._rx) if self._rx is not None else None
        self._close()
        log.info("diode-sim stopped: %s", format_counters(self.counters()))

    def _close(self) -> None:
        for sock in (self._rx, self._tx):
            if sock is not None:
                sock.close()

    def counters(self) -> dict[str, Any]:
        """Exact counts so far: every datagram received is forwarded, dropped or in flight."""
        values = self.stats.values()
        held = self._held
        cap = self.rate_cap
        values["queued"] = (len(cap.queue) if cap else 0) + (1 if held is not None else 0)
        values["queued_bytes"] = (cap.queued_bytes if cap else 0) + (len(held[0]) if held else 0)
        if self._rx is None:
            values["receive_buffer_drops"] = None
        elif self._final_rx_drops is not None:
            values["receive_buffer_drops"] = self._final_rx_drops
        else:
            values["receive_buffer_drops"] = socket_drops(self._rx)
        return values

    # --- relay ---------------------------------------------------------------------------

    def _relay_plain(self) -> None:
        """No impairment: recv_into one preallocated buffer, send a view of it."""
        assert self._rx is not None and self._tx is not None
        recv_into, send = self._rx.recv_into, self._tx.send
        buffer = bytearray(RECEIVE_SIZE)
        view = memoryview(buffer)
        stats = self.stats
        handled = 0
        while True:
            size = recv_into(buffer)
            stats.received += 1
            stats.received_bytes += size
            try:
                send(view[:size])
            except OSError as exc:
                self._send(view[:size], exc)
            else:
                stats.forwarded += 1
                stats.forwarded_bytes += size
            handled += 1
            if handled >= YIELD_EVERY:  # under sustained load recv never has to wait
                handled = 0
                gevent.sleep(0)

    def _relay_pending(self, deadline: float) -> None:
        """On stop: what the kernel already holds for us is relayed like the rest."""
        assert self._rx is not None
        buffer = bytearray(RECEIVE_SIZE)
        view = memoryview(buffer)
        self._rx.settimeout(0.0)
        while time.monotonic() < deadline:
            try:
                size = self._rx.recv_into(buffer)
            except OSError:
                return
            if self.config.impaired:
                self._impair(view[:size])
            else:
                self.stats.received += 1
                self.stats.received_bytes += size
                self._send(view[:size])

    def _relay_impaired(self) -> None:
        assert self._rx is not None
        recv_into = self._rx.recv_into
        buffer = bytearray(RECEIVE_SIZE)
        view = memoryview(buffer)
        handled = 0
        hold = self.config.reorder_hold
        while True:
            size: int | None
            if self._held is None:
                size = recv_into(buffer)
            else:
                size = gevent.with_timeout(hold, recv_into, buffer, timeout_value=None)
                if size is None:  # nothing came to overtake the held datagram
                    held, copies = self._held
                    self._held = None
                    self._emit(held, copies)
                    continue
            self._impair(view[:size])
            handled += 1
            if handled >= YIELD_EVERY:
                handled = 0
                gevent.sleep(0)

    def _impair(self, datagram: memoryview) -> None:
        stats = self.stats
        stats.received += 1
        stats.received_bytes += len(datagram)
        dropped, copies, hold = self.impairments.fate()
        if dropped is not None:
            stats.drop(dropped, datagram)
            return
        if hold and self._held is None:
            self._held = (bytes(datagram), copies)
            return
        self._emit(datagram, copies)
        if self._held is not None:
            held, held_copies = self._held
            self._held = None
            stats.reordered += 1
            self._emit(held, held_copies)

    def _emit(self, datagram: memoryview | bytes, copies: int) -> None:
        if copies > 1:
            self.stats.duplicated += copies - 1
        cap = self.rate_cap
        for _ in range(copies):
            if cap is None:
                self._send(datagram)
            elif not cap.admit(datagram):
                self.stats.drop("overflow", datagram)

    def _send(self, datagram: memoryview | bytes, error: OSError | None = None) -> None:
        """Forward one datagram (gevent's send waits while the socket buffer is full); `error`
        is what a first send() of it already raised."""
        assert self._tx is not None
        retry_refused = True
        while True:
            if error is None:
                try:
                    self._tx.send(datagram)
                except OSError as exc:
                    error = exc
                else:
                    self.stats.forwarded += 1
                    self.stats.forwarded_bytes += len(datagram)
                    return
            if not isinstance(error, ConnectionRefusedError):
                self._send_failed(datagram, error.strerror or str(error))
                return
            # The ICMP port unreachable of an *earlier* datagram, reported on this send(), which
            # did not go out: count it and try once more.
            self.stats.forward_refused += 1
            self._send_problems(
                "refused",
                "nothing listens on %s (port unreachable, %d times so far)",
                format_hostport(self.config.forward),
                self.stats.forward_refused,
            )
            if not retry_refused:
                self._send_failed(datagram, "port unreachable")
                return
            retry_refused = False
            error = None

    def _send_failed(self, datagram: memoryview | bytes, problem: str) -> None:
        self.stats.drop("send_error", datagram)
        self._send_problems(
            "failed",
            "forwarding to %s failed (%d dropped so far): %s",
            format_hostport(self.config.forward),
            self.stats.dropped_send_error,
            problem,
        )
