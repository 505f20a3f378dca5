"""Parsing of human-friendly sizes, rates, durations and addresses."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_SIZE_UNITS: dict[str, float] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_RATE_UNITS: dict[str, float] = {
    "": 1,
    "bit": 1,
    "bps": 1,
    "kbit": 1000,
    "kbps": 1000,
    "mbit": 1000**2,
    "mbps": 1000**2,
    "gbit": 1000**3,
    "gbps": 1000**3,
}
_DURATION_UNITS = {
    "": 1.0,
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
# The largest value each kind may take: far beyond any real setting, small enough that every
# consumer (ints of the OS, timers, token buckets) takes it. Fields may set lower bounds.
MAX_SIZE = 2**50  # 1 PiB
MAX_RATE = 10.0**13  # 10 Tbit/s
MAX_DURATION = 10 * 365 * 86400.0  # 10 years
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def _parse(
    value: object, units: Mapping[str, float], what: str, example: str, maximum: float
) -> float:
    """A finite number in 0..maximum; ValueError (one line, naming the problem) otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a {what} such as {example!r}, got {value!r}")
    if isinstance(value, int | float):
        number = float(value) if abs(value) < 1e308 else math.copysign(math.inf, value)
    elif isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in units:
            raise ValueError(f"invalid {what} {value!r} (expected e.g. {example!r})")
        number = float(match.group(1)) * units[unit]
    else:
        raise ValueError(f"expected a {what} such as {example!r}, got {value!r}")
    if math.isnan(number):
        raise ValueError(f"{what} must be a number, got nan")
    if number < 0:
        raise ValueError(f"{what} must not be negative")
    if number > maximum:
        raise ValueError(f"{what} {value!r} is too large (at most {maximum:.15g})")
    return number


def parse_size(value: object, maximum: float = MAX_SIZE) -> int:
    """Bytes from 65507, "64KiB", "32MiB", "1GB"; at most `maximum`."""
    return int(_parse(value, _SIZE_UNITS, "size", "32MiB", maximum))


def parse_rate(value: object, maximum: float = MAX_RATE) -> float:
    """Bits per second from 8e8, "800Mbit", "1Gbit", "10Mbps"; at most `maximum`."""
    return _parse(value, _RATE_UNITS, "rate", "800Mbit", maximum)


def parse_duration(value: object, maximum: float = MAX_DURATION) -> float:
    """Seconds from 1.5, "250ms", "24h", "7d"; at most `maximum`."""
    return _parse(value, _DURATION_UNITS, "duration", "24h", maximum)


def parse_hostport(value: object, *, allow_zero_port: bool = False) -> tuple[str, int]:
    """("127.0.0.1", 7000) from "127.0.0.1:7000" or "[::1]:7000"."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    port = int(port_text)
    if port > 65535 or (port == 0 and not allow_zero_port):
        raise ValueError(f"port out of range in {value!r}")
    return host, port


def format_hostport(address: tuple[Any, ...]) -> str:
    """`host:port` (`[host]:port` for IPv6) of a (host, port, ...) socket address."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_port(address: str | tuple[Any, ...]) -> tuple[str, int]:
    """(host, port) of a server's bound address: the daemons bind IP addresses, never the Unix
    socket paths that a gevent server's `address` may also hold."""
    if not isinstance(address, tuple):
        raise TypeError(f"not an IP socket address: {address!r}")
    return address[0], address[1]


def bound_address(server: Any) -> tuple[str, int]:
    """host_port() of a started gevent server's address (None, not started: AssertionError)."""
    assert server is not None, "start() creates the server"
    return host_port(server.address)
