"""Which sender the egress listens to, and whether its link is up.

A fresh egress pins the first sender it hears (or only ever `expected_sender`). Any other
address is refused (counted as foreign) while the pinned sender is alive. Once the pinned
sender has been silent for `heartbeat_timeout` or said Shutdown, a new sender can take over
with a StartUp, or, if its StartUp burst came while the old sender still held the link (a
restart on a new port), with its next packet. A sender that never sent a StartUp takes over a
silent link with its second HeartBeat: the ingress behind a restarted relay or a NAT rebinding
keeps its session and says no StartUp again, and the link must not stay refused for good.

`heartbeat_timeout` 0 (peer = "reference": that ingress sends no HeartBeats) means no silence
alarm, and a StartUp from any allowed address takes the link over at once.

With authentication on, the session is the pinned sender: the receiver lets through only
datagrams of the session, and `follow` moves the pin to the address they come from (NAT, an
ingress restarted on a new port). `cause` names why a link carrying only refused datagrams is
down ("authentication failing (bad_tag)").
"""

from __future__ import annotations

import logging
import socket
import time

from ddc.errors import ConfigError
from ddc.logs import ThrottledLog
from ddc.protocol.wire import MessageType
from ddc.units import format_hostport, parse_hostport

log = logging.getLogger(__name__)


class LinkState:
    def __init__(self, heartbeat_timeout: float, expected_sender: str | None = None) -> None:
        self.timeout = heartbeat_timeout
        self.expected: tuple[str, int] | None = None
        if expected_sender:
            host, port = parse_hostport(expected_sender, allow_zero_port=True)
            try:  # datagrams come from numeric addresses: compare with the name's address
                host = str(socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][4][0])
            except OSError as exc:
                raise ConfigError(
                    "egress.transport.expected_sender", f"cannot resolve {host!r}: {exc}"
                ) from None
            self.expected = (host, port)
        self.pinned: tuple | None = None
        self.candidate: tuple | None = None  # the last sender whose StartUp was refused
        self.heartbeat_from: tuple | None = (
            None  # a new sender that sent a HeartBeat to a silent link
        )
        self.released = True  # no sender yet, or the pinned one went silent / shut down
        self.last_packet = 0.0  # monotonic time of the pinned sender's last valid packet
        self.up = False
        self.down_reason = "no sender yet"
        self.ever_up = False
        self._follow_log = ThrottledLog(log, 10.0, logging.INFO)

    def _pinned_name(self) -> str:
        """The pinned sender, for log lines."""
        return format_hostport(self.pinned) if self.pinned is not None else "none"

    def allowed(self, address: tuple) -> bool:
        """May this address be (or become) our sender?"""
        if self.expected is not None:
            host, port = self.expected
            return address[0] == host and (port == 0 or address[1] == port)
        return True

    def may_pin(self, address: tuple, now: float, kind: int | None = None) -> bool:
        """A valid packet of type `kind` from `address`, not the pinned sender: may it take over?"""
        if not self.allowed(address):
            return False
        if self.pinned is None:
            return True
        if self.released or now - self.last_packet >= self.timeout:
            if kind == MessageType.STARTUP or address == self.candidate:
                return True
            return self._second_heartbeat(address, kind)
        if kind == MessageType.STARTUP:
            self.candidate = address
        return False

    def _second_heartbeat(self, address: tuple, kind: int | None) -> bool:
        if kind != MessageType.HEARTBEAT:
            return False
        if self.heartbeat_from == address:
            return True
        self.heartbeat_from = address
        return False

    def pin(self, address: tuple, now: float) -> None:
        previous = self.pinned
        self.pinned = address
        self.candidate = self.heartbeat_from = None
        self.released = False
        self.last_packet = now
        if previous is None:
            log.info("sender %s pinned", format_hostport(address))
        else:
            log.warning(
                "sender %s pinned, replacing %s (silent or shut down)",
                format_hostport(address),
                format_hostport(previous),
            )

    def follow(self, address: tuple, now: float) -> None:
        """Authentication on: the session's datagrams now come from `address`."""
        previous = self.pinned
        self.pinned = address
        self.candidate = None
        self.last_packet = now
        self._follow_log(
            "follow",
            "authenticated session's sender is %s (was %s)",
            format_hostport(address),
            "none" if previous is None else format_hostport(previous),
        )

    def refused_only(self, cause: str) -> None:
        """The link is down and carries only refused datagrams: say so once per cause."""
        if not self.up and self.down_reason != cause:
            self.down_reason = cause
            log.error("link interrupted: %s (datagrams arrive, none is accepted)", cause)

    def heard(self, now: float) -> None:
        self.last_packet = now
        if not self.up:
            self.up = True
            if self.ever_up:
                log.info("link restored: sender %s", self._pinned_name())
            else:
                log.info("link up: sender %s", self._pinned_name())
            self.ever_up = True

    def shutdown(self) -> None:
        """The pinned sender said Shutdown: link down, and any sender may start the next session."""
        self.released = True
        if self.up:
            self.up = False
            self.down_reason = "shutdown"
            log.warning("link down: sender %s sent Shutdown", self._pinned_name())

    def check_timeout(self, now: float | None = None, cause: str | None = None) -> bool:
        """Called periodically: True when the link just went down for silence (`cause`: the
        datagrams that did arrive were all refused, and why)."""
        now = time.monotonic() if now is None else now
        if self.up and self.timeout > 0 and now - self.last_packet >= self.timeout:
            self.up = False
            if cause is not None:
                self.down_reason = cause
                log.error(
                    "link interrupted: %s (nothing accepted for %.1fs)",
                    cause,
                    now - self.last_packet,
                )
                return True
            self.down_reason = "heartbeat timeout"
            log.error(
                "link interrupted: nothing from %s for %.1fs (heartbeat_timeout %.1fs)",
                self._pinned_name(),
                now - self.last_packet,
                self.timeout,
            )
            return True
        return False

    def age(self, now: float | None = None) -> float | None:
        if self.pinned is None:
            return None
        return (time.monotonic() if now is None else now) - self.last_packet
