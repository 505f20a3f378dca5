"""`ddc diode-sim`: a one-way UDP relay standing in for a data diode in tests and demos.

Every datagram received on `listen` is sent on to `forward` from a second socket, after seeded
random impairments. Nothing is ever sent toward the sender: the listening socket only receives.

Per datagram, one `random.Random(seed)` draw is made for each enabled impairment, always in this
order and whatever the outcome: burst start, loss, duplicate, reorder. The n-th datagram's fate
therefore depends only on n and the seed, never on timing (the rate cap's overflow drops do
depend on arrival times, like the real hardware's).

* burst loss (P, LEN): a burst of LEN consecutive drops starts with probability P.
* loss P: an independent drop.
* duplicate P: the datagram is forwarded twice.
* reorder P: the datagram is held back and forwarded right after the next one (or after
  `reorder_hold` seconds of silence).
* rate R (bits/s of UDP payload) with a `buffer` of bytes behind it: a serialising link whose
  backlog never exceeds `buffer`; a datagram that does not fit is dropped.

Every datagram is counted exactly once: received + duplicated = forwarded + dropped + queued.
The counts are DiodeSim.counters(), the JSON of GET /healthz, ddc_diode_sim_* on /metrics and
the "diode-sim final:" line on stderr at exit. `dropped_by_type` splits the drops by DDC v1
message type: an egress counts as lost only the data packets (data_first + data) among them.
`receive_buffer_drops` is what the kernel dropped before the relay could read it (/proc/net/udp).
"""

from __future__ import annotations

import argparse
import logging
import random
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent import monkey
from gevent import socket as gsocket
from gevent.event import Event
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ddc.daemon import Service, config_error_exit, configure_logging, serve
from ddc.errors import ConfigError
from ddc.http import HttpServer
from ddc.netio import socket_drops
from ddc.units import format_hostport, parse_duration, parse_hostport, parse_rate, parse_size

log = logging.getLogger(__name__)

SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
MAX_DATAGRAM = 65535
YIELD_EVERY = 256  # datagrams handled between cooperative yields under sustained load

DROP_REASONS = ("loss", "burst", "overflow", "send_error", "shutdown")
# DDC v1 message types (DESIGN.md §2), to tell which kind of datagram a drop hit.
_TYPE_NAMES = {1: "startup", 2: "heartbeat", 3: "data_first", 4: "data", 5: "shutdown"}
_HEADER_SIZE = 9


@dataclass
class SimConfig:
    listen: tuple[str, int]
    forward: tuple[str, int]
    loss: float = 0.0
    burst_loss: float = 0.0
    burst_length: int = 0
    reorder: float = 0.0
    duplicate: float = 0.0
    rate: float | None = None  # bits/s of UDP payload; None: no cap
    buffer: int = 4 * 1024**2
    seed: int | None = None  # None: one is drawn and logged so the run can be repeated
    forward_bind: tuple[str, int] | None = None
    receive_buffer: int = 64 * 1024**2
    send_buffer: int = 16 * 1024**2
    reorder_hold: float = 0.05
    http_listen: tuple[str, int] | None = None
    stats_interval: float | None = None

    def __post_init__(self) -> None:
        for key in ("loss", "burst_loss", "reorder", "duplicate"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(key, f"probability must be between 0 and 1, got {value}")
        if self.burst_loss and self.burst_length < 1:
            raise ConfigError("burst_loss", "burst length must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise ConfigError("rate", "must be greater than 0")
        if self.buffer < 0:
            raise ConfigError("buffer", "must not be negative")
        if self.stats_interval is not None and self.stats_interval <= 0:
            raise ConfigError("stats_interval", "must be greater than 0")
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2**31)

    @property
    def impaired(self) -> bool:
        return bool(self.loss or self.burst_loss or self.reorder or self.duplicate or self.rate)


@dataclass
class Counters:
    received: int = 0
    received_bytes: int = 0
    forwarded: int = 0
    forwarded_bytes: int = 0
    dropped_loss: int = 0
    dropped_burst: int = 0
    dropped_overflow: int = 0
    dropped_send_error: int = 0
    dropped_shutdown: int = 0
    duplicated: int = 0
    reordered: int = 0
    forward_refused: int = 0  # port unreachable reported for --forward: nothing listens there
    # (reason, DDC message type) → drops: lets a test compare with the egress's lost packets,
    # which count only data packets.
    dropped_by: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(getattr(self, f"dropped_{reason}") for reason in DROP_REASONS)


def message_type(datagram: memoryview | bytes) -> str:
    """The DDC v1 message type name of a datagram, "other" when it is not one."""
    if len(datagram) < _HEADER_SIZE:
        return "other"
    return _TYPE_NAMES.get(datagram[0], "other")


def _resolve(address: tuple[str, int]) -> tuple[int, tuple[Any, ...]]:
    host, port = address
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
    except socket.gaierror as exc:
        raise ConfigError("address", f"cannot resolve {host!r}: {exc}") from None
    return family, sockaddr


def _set_buffer(sock: socket.socket, size: int, receive: bool) -> int:
    """Ask for a socket buffer of `size` bytes (forced past the sysctl as root); what we got."""
    option, force, sysctl = (
        (socket.SO_RCVBUF, SO_RCVBUFFORCE, "net.core.rmem_max")
        if receive
        else (socket.SO_SNDBUF, SO_SNDBUFFORCE, "net.core.wmem_max")
    )
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, option, size)
    granted = sock.getsockopt(socket.SOL_SOCKET, option) // 2  # Linux reports twice the size
    if granted < size:
        log.warning(
            "%s buffer is %d bytes, not the %d asked for: run as root or raise sysctl %s",
            "receive" if receive else "send", granted, size, sysctl,
        )  # fmt: skip
    return granted


class DiodeSim(Service):
    """The relay; start()/stop(timeout). Runs in-process under gevent without monkey patching."""

    name = "diode-sim"

    def __init__(self, config: SimConfig) -> None:
        super().__init__()
        self.config = config
        self.stats = Counters()
        self.rng = random.Random(config.seed)
        self._rx: socket.socket | None = None
        self._tx: socket.socket | None = None
        self._forward: tuple[Any, ...] = ()
        self._relay: gevent.Greenlet | None = None
        self._pacer: gevent.Greenlet | None = None
        self._http: HttpServer | None = None
        self._burst_left = 0
        self._held: tuple[bytes, int] | None = None
        self._queue: deque[tuple[float, bytes]] = deque()
        self._queue_bytes = 0
        self._queue_ready = Event()
        self._link_free_at = 0.0
        self._draining = False
        self._started_at = 0.0
        self._final_rx_drops: int | None = None

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
        rx_family, listen = _resolve(cfg.listen)
        tx_family, self._forward = _resolve(cfg.forward)
        self._rx = gsocket.socket(rx_family, socket.SOCK_DGRAM)
        self._tx = gsocket.socket(tx_family, socket.SOCK_DGRAM)
        try:
            _set_buffer(self._rx, cfg.receive_buffer, receive=True)
            _set_buffer(self._tx, cfg.send_buffer, receive=False)
            self._bind(self._rx, listen, "listen")
            if cfg.forward_bind is not None:
                self._bind(self._tx, _resolve(cfg.forward_bind)[1], "forward_bind")
            # Connected: send() skips the per-datagram route lookup (about 15% of the cost), and
            # the socket still only ever sends, to the one forward address.
            try:
                self._tx.connect(self._forward)
            except OSError as exc:
                raise ConfigError(
                    "forward", f"cannot send to {format_hostport(cfg.forward)}: {exc.strerror}"
                ) from None
            if cfg.http_listen is not None:
                self._http = HttpServer(cfg.http_listen, self._registry(), self._routes())
                try:
                    self._http.start()
                except OSError as exc:
                    where = format_hostport(cfg.http_listen)
                    raise ConfigError("http", f"cannot bind {where}: {exc.strerror}") from None
        except BaseException:
            self._close()
            raise
        self._started_at = time.monotonic()
        if cfg.impaired:
            self._relay = self.spawn(self._relay_impaired, name="relay")
        else:
            self._relay = self.spawn(self._relay_plain, name="relay")
        if cfg.rate:
            self._pacer = self.spawn(self._pace, name="pacer")
        if cfg.stats_interval:
            self.spawn(self._print_stats, cfg.stats_interval, name="stats")
        log.info(
            "diode-sim %s -> %s (seed %s%s)",
            format_hostport(self.address), format_hostport(cfg.forward), cfg.seed,
            "".join(f", {k} {getattr(cfg, k)}" for k in ("loss", "reorder", "duplicate") if getattr(cfg, k))
            + (f", burst {cfg.burst_loss}x{cfg.burst_length}" if cfg.burst_loss else "")
            + (f", rate {cfg.rate:.0f} bit/s buffer {cfg.buffer}" if cfg.rate else ""),
        )  # fmt: skip

    def _bind(self, sock: socket.socket, address: tuple[Any, ...], key: str) -> None:
        try:
            sock.bind(address)
        except OSError as exc:
            raise ConfigError(
                key, f"cannot bind {format_hostport(address[:2])}: {exc.strerror}"
            ) from None

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
        if self._pacer is not None:
            self._draining = True
            self._queue_ready.set()
            self._pacer.join(max(0.0, deadline - time.monotonic()))
            self._pacer.kill()
            while self._queue:
                _, data = self._queue.popleft()
                self._queue_bytes -= len(data)
                self._drop("shutdown", data)
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

    # --- counters ------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """Exact counts so far: every datagram received is forwarded, dropped or in flight."""
        stats = self.stats
        values: dict[str, Any] = {
            name: getattr(stats, name)
            for name in Counters.__dataclass_fields__
            if name != "dropped_by"
        }
        values["dropped"] = stats.dropped
        by_type: dict[str, int] = {}
        for (_, kind), count in stats.dropped_by.items():
            by_type[kind] = by_type.get(kind, 0) + count
        values["dropped_by_type"] = by_type
        values["queued"] = len(self._queue) + (1 if self._held is not None else 0)
        values["queued_bytes"] = self._queue_bytes + (len(self._held[0]) if self._held else 0)
        values["receive_buffer_drops"] = (
            (self._final_rx_drops if self._final_rx_drops is not None else socket_drops(self._rx))
            if self._rx is not None
            else None
        )
        return values

    def _registry(self) -> CollectorRegistry:
        registry = CollectorRegistry()
        registry.register(_SimCollector(self))
        return registry

    def _routes(self) -> dict[tuple[str, str], Any]:
        def healthz() -> tuple[int, dict[str, Any]]:
            body: dict[str, Any] = {
                "status": "ok" if self.crashed is None else "degraded",
                "listen": format_hostport(self.address),
                "forward": format_hostport(self.config.forward),
                "seed": self.config.seed,
                "uptime_s": round(time.monotonic() - self._started_at, 3),
            }
            body.update(self.counters())
            return 200, body

        return {("GET", "/healthz"): healthz}

    def _drop(self, reason: str, datagram: memoryview | bytes) -> None:
        name = f"dropped_{reason}"
        setattr(self.stats, name, getattr(self.stats, name) + 1)
        key = (reason, message_type(datagram))
        self.stats.dropped_by[key] = self.stats.dropped_by.get(key, 0) + 1

    # --- relay ---------------------------------------------------------------------------

    def _relay_plain(self) -> None:
        """No impairment: recv_into one preallocated buffer, send a view of it."""
        recv_into, send = self._rx.recv_into, self._tx.send
        buffer = bytearray(MAX_DATAGRAM)
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
        buffer = bytearray(MAX_DATAGRAM)
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
        recv_into = self._rx.recv_into
        buffer = bytearray(MAX_DATAGRAM)
        view = memoryview(buffer)
        handled = 0
        hold = self.config.reorder_hold
        while True:
            if self._held is None:
                size = recv_into(buffer)
            else:
                size = None
                with gevent.Timeout(hold, False):
                    size = recv_into(buffer)
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
        cfg, stats, rng = self.config, self.stats, self.rng
        stats.received += 1
        stats.received_bytes += len(datagram)
        # One draw per enabled impairment, whatever happens (see the module docstring).
        burst_start = cfg.burst_loss and rng.random() < cfg.burst_loss
        lost = cfg.loss and rng.random() < cfg.loss
        duplicate = cfg.duplicate and rng.random() < cfg.duplicate
        reorder = cfg.reorder and rng.random() < cfg.reorder
        if self._burst_left:
            self._burst_left -= 1
            self._drop("burst", datagram)
            return
        if burst_start:
            self._burst_left = cfg.burst_length - 1
            self._drop("burst", datagram)
            return
        if lost:
            self._drop("loss", datagram)
            return
        copies = 2 if duplicate else 1
        if reorder and self._held is None:
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
        for _ in range(copies):
            if self.config.rate:
                self._enqueue(datagram)
            else:
                self._send(datagram)

    def _send(self, datagram: memoryview | bytes, error: OSError | None = None) -> None:
        """Forward one datagram (gevent's send waits while the socket buffer is full); `error`
        is what a first send() of it already raised."""
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
            if isinstance(error, ConnectionRefusedError):
                # The ICMP port unreachable of an *earlier* datagram, reported on this send(),
                # which did not go out: count it and try once more.
                self.stats.forward_refused += 1
                refused = self.stats.forward_refused
                if refused in (1, 100) or refused % 10000 == 0:
                    log.warning(
                        "nothing listens on %s (port unreachable, %d times so far)",
                        format_hostport(self.config.forward), refused,
                    )  # fmt: skip
                if not retry_refused:
                    self._send_failed(datagram, "port unreachable")
                    return
                retry_refused = False
            else:
                self._send_failed(datagram, error.strerror or str(error))
                return
            error = None

    def _send_failed(self, datagram: memoryview | bytes, problem: str) -> None:
        self._drop("send_error", datagram)
        failures = self.stats.dropped_send_error
        if failures in (1, 10, 100) or failures % 1000 == 0:
            log.warning(
                "forwarding to %s failed (%d dropped so far): %s",
                format_hostport(self.config.forward), failures, problem,
            )  # fmt: skip

    # --- rate cap with a finite buffer -----------------------------------------------------

    def _enqueue(self, datagram: memoryview | bytes) -> None:
        """Admit a datagram to the link's buffer, or drop it when the backlog would overflow."""
        size = len(datagram)
        bytes_per_s = self.config.rate / 8.0
        now = time.monotonic()
        backlog = (self._link_free_at - now) * bytes_per_s if self._link_free_at > now else 0.0
        if backlog + size > self.config.buffer:
            self._drop("overflow", datagram)
            return
        self._link_free_at = max(now, self._link_free_at) + size / bytes_per_s
        self._queue.append((self._link_free_at, bytes(datagram)))
        self._queue_bytes += size
        if not self._queue_ready.is_set():
            self._queue_ready.set()

    def _pace(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._draining:
                    return
                self._queue_ready.clear()
                self._queue_ready.wait()
                continue
            delay = queue[0][0] - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
                continue
            _, datagram = queue.popleft()
            self._queue_bytes -= len(datagram)
            self._send(datagram)

    def _print_stats(self, interval: float) -> None:
        last = self.counters()
        last_time = time.monotonic()
        while True:
            gevent.sleep(interval)
            now_counters, now = self.counters(), time.monotonic()
            elapsed = max(now - last_time, 1e-9)
            rate_pps = (now_counters["received"] - last["received"]) / elapsed
            rate_mbs = (now_counters["received_bytes"] - last["received_bytes"]) / elapsed / 1e6
            print(
                f"diode-sim: {rate_pps:.0f} pkt/s {rate_mbs:.1f} MB/s {format_counters(now_counters)}",
                file=sys.stderr,
                flush=True,
            )
            last, last_time = now_counters, now


class DiodeSimThread:
    """A DiodeSim on its own gevent hub in a background thread, for callers that block (plain
    pytest tests with stdlib sockets and time.sleep), which would otherwise starve the relay.

    counters() may be called from any thread: it reads plain ints under the GIL.
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.sim: DiodeSim | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._wakeup: Any = None
        self._stop_timeout = 10.0
        self._thread = threading.Thread(target=self._run, name="diode-sim", daemon=True)

    def start(self, timeout: float = 10.0) -> DiodeSimThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("diode-sim thread did not start")
        if self._failure is not None:
            raise self._failure
        return self

    def _run(self) -> None:
        hub = gevent.get_hub()  # this thread's own hub
        stopping = Event()
        self._wakeup = hub.loop.async_()
        self._wakeup.start(stopping.set)
        try:
            self.sim = DiodeSim(self.config)
            self.sim.start()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        gevent.wait([stopping, self.sim.stopping], count=1)
        self.sim.stop(self._stop_timeout)
        self._wakeup.close()
        hub.destroy(destroy_loop=True)

    @property
    def address(self) -> tuple[str, int]:
        assert self.sim is not None, "not started"
        return self.sim.address

    @property
    def source_address(self) -> tuple[str, int]:
        assert self.sim is not None, "not started"
        return self.sim.source_address

    @property
    def http_address(self) -> tuple[str, int] | None:
        return self.sim.http_address if self.sim else None

    def counters(self) -> dict[str, Any]:
        assert self.sim is not None, "not started"
        return self.sim.counters()

    def stop(self, timeout: float = 10.0) -> None:
        if self._wakeup is None or not self._thread.is_alive():
            return
        self._stop_timeout = timeout
        self._wakeup.send()  # thread-safe: wakes the sim's hub
        self._thread.join(timeout + 5)

    def __enter__(self) -> DiodeSimThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _SimCollector:
    """Prometheus view of the counters, read at scrape time (no per-datagram metric calls)."""

    def __init__(self, sim: DiodeSim) -> None:
        self.sim = sim

    def collect(self) -> Any:
        c = self.sim.counters()
        prefix = "ddc_diode_sim_"
        for name, key, text in (
            ("packets_received", "received", "Datagrams received"),
            ("bytes_received", "received_bytes", "Datagram bytes received"),
            ("packets_forwarded", "forwarded", "Datagrams forwarded (duplicates included)"),
            ("bytes_forwarded", "forwarded_bytes", "Datagram bytes forwarded"),
            ("packets_duplicated", "duplicated", "Extra copies forwarded"),
            ("packets_reordered", "reordered", "Datagrams forwarded after a later one"),
        ):
            yield CounterMetricFamily(prefix + name, text, value=c[key])
        dropped = CounterMetricFamily(
            prefix + "packets_dropped", "Datagrams dropped, by reason and DDC message type",
            labels=["reason", "message_type"],
        )  # fmt: skip
        for (reason, kind), count in sorted(self.sim.stats.dropped_by.items()):
            dropped.add_metric([reason, kind], count)
        yield dropped
        if c["receive_buffer_drops"] is not None:
            yield CounterMetricFamily(
                prefix + "receive_buffer_drops",
                "Datagrams the kernel dropped before the simulator read them",
                value=c["receive_buffer_drops"],
            )
        yield GaugeMetricFamily(
            prefix + "queued_packets", "Datagrams held or queued", value=c["queued"]
        )
        yield GaugeMetricFamily(
            prefix + "queued_bytes", "Bytes held or queued", value=c["queued_bytes"]
        )


def format_counters(counters: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in counters.items() if not isinstance(v, dict)]
    by_type = counters.get("dropped_by_type") or {}
    parts += [f"dropped_{kind}_packets={count}" for kind, count in sorted(by_type.items())]
    return " ".join(parts)


# --- command line ------------------------------------------------------------------------


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a probability such as 0.01, got {text!r}"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"probability must be between 0 and 1, got {text!r}")
    return value


def _burst(text: str) -> tuple[float, int]:
    probability, sep, length = text.partition(",")
    if not sep or not length.strip().isdigit() or int(length) < 1:
        raise argparse.ArgumentTypeError(f"expected P,LEN such as 0.001,20, got {text!r}")
    return _probability(probability), int(length)


def _typed(parser: Any, what: str) -> Any:
    def parse(text: str) -> Any:
        try:
            return parser(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = what
    return parse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "A one-way UDP relay standing in for a data diode: forwards every datagram from "
        "--listen to --forward with seeded random impairments; never sends anything back."
    )
    hostport = _typed(parse_hostport, "HOST:PORT")
    bindport = _typed(lambda text: parse_hostport(text, allow_zero_port=True), "HOST:PORT")
    add = parser.add_argument
    add("--listen", required=True, type=bindport, metavar="HOST:PORT", help="where to receive")
    add("--forward", required=True, type=hostport, metavar="HOST:PORT", help="where to send")
    add(
        "--forward-bind",
        type=bindport,
        metavar="HOST:PORT",
        help="source address of forwarded datagrams (default: any, kernel-chosen port)",
    )
    add("--loss", type=_probability, default=0.0, metavar="P", help="drop probability")
    add(
        "--burst-loss",
        type=_burst,
        metavar="P,LEN",
        help="start a burst of LEN consecutive drops with probability P",
    )
    add(
        "--reorder",
        type=_probability,
        default=0.0,
        metavar="P",
        help="probability to forward a datagram after the next one",
    )
    add(
        "--reorder-hold",
        type=_typed(parse_duration, "duration"),
        default=0.05,
        metavar="S",
        help="longest a reordered datagram waits for a successor (default 50ms)",
    )
    add("--duplicate", type=_probability, default=0.0, metavar="P", help="duplication probability")
    add(
        "--rate",
        type=_typed(parse_rate, "rate"),
        metavar="R",
        help='rate cap in bits/s of UDP payload, e.g. "800Mbit"',
    )
    add(
        "--buffer",
        type=_typed(parse_size, "size"),
        default=4 * 1024**2,
        metavar="BYTES",
        help="buffer behind the rate cap; overflow drops (default 4MiB)",
    )
    add("--seed", type=int, metavar="N", help="random seed (default: drawn and logged)")
    add(
        "--receive-buffer",
        type=_typed(parse_size, "size"),
        default=64 * 1024**2,
        metavar="BYTES",
        help="SO_RCVBUF of the listening socket (default 64MiB)",
    )
    add(
        "--send-buffer",
        type=_typed(parse_size, "size"),
        default=16 * 1024**2,
        metavar="BYTES",
        help="SO_SNDBUF of the forwarding socket (default 16MiB)",
    )
    add(
        "--http",
        type=bindport,
        metavar="HOST:PORT",
        help="serve counters: Prometheus on /metrics, JSON on /healthz",
    )
    add(
        "--stats-interval",
        type=_typed(parse_duration, "duration"),
        metavar="S",
        help="print counters to stderr every S seconds",
    )
    add("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])  # fmt: skip


def config_from_args(args: argparse.Namespace) -> SimConfig:
    burst_p, burst_len = args.burst_loss or (0.0, 0)
    return SimConfig(
        listen=args.listen,
        forward=args.forward,
        forward_bind=args.forward_bind,
        loss=args.loss,
        burst_loss=burst_p,
        burst_length=burst_len,
        reorder=args.reorder,
        reorder_hold=args.reorder_hold,
        duplicate=args.duplicate,
        rate=args.rate,
        buffer=args.buffer,
        seed=args.seed,
        receive_buffer=args.receive_buffer,
        send_buffer=args.send_buffer,
        http_listen=args.http,
        stats_interval=args.stats_interval,
    )


def run(args: argparse.Namespace) -> int:
    monkey.patch_all()
    configure_logging(args.log_level)
    try:
        sim = DiodeSim(config_from_args(args))
    except ConfigError as exc:
        return config_error_exit(exc)
    code = serve(sim, drain_timeout=5.0)
    if sim.stats.received or code == 0:
        print(f"diode-sim final: {format_counters(sim.counters())}", file=sys.stderr, flush=True)
    return code
