"""`ddc diode-sim --listen HOST:PORT --forward HOST:PORT [impairments]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ddc.diode_sim.config import (
    DEFAULT_BUFFER,
    DEFAULT_RECEIVE_BUFFER,
    DEFAULT_REORDER_HOLD,
    DEFAULT_SEND_BUFFER,
    SimConfig,
)
from ddc.units import parse_duration, parse_hostport, parse_rate, parse_size


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


def _typed(parser: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    """`parser` for argparse: its ValueError becomes a usage error; `what` names the type."""

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
    size = _typed(parse_size, "size")
    duration = _typed(parse_duration, "duration")
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
        type=duration,
        default=DEFAULT_REORDER_HOLD,
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
        type=size,
        default=DEFAULT_BUFFER,
        metavar="BYTES",
        help="buffer behind the rate cap; overflow drops (default 4MiB)",
    )
    add("--seed", type=int, metavar="N", help="random seed (default: drawn and logged)")
    add(
        "--receive-buffer",
        type=size,
        default=DEFAULT_RECEIVE_BUFFER,
        metavar="BYTES",
        help="SO_RCVBUF of the listening socket (default 64MiB)",
    )
    add(
        "--send-buffer",
        type=size,
        default=DEFAULT_SEND_BUFFER,
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
        type=duration,
        metavar="S",
        help="print counters to stderr every S seconds",
    )
    add("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The SimConfig of parsed options; ConfigError when they contradict each other."""
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
    from gevent import monkey

    monkey.patch_all()  # before anything else imports sockets or threads

    from ddc.daemon import config_error_exit, configure_logging, serve
    from ddc.diode_sim.counters import format_counters
    from ddc.diode_sim.relay import DiodeSim
    from ddc.errors import ConfigError

    configure_logging(args.log_level)
    try:
        sim = DiodeSim(config_from_args(args))
    except ConfigError as exc:
        return config_error_exit(exc)
    code = serve(sim, drain_timeout=5.0)
    if sim.stats.received or code == 0:
        print(f"diode-sim final: {format_counters(sim.counters())}", file=sys.stderr, flush=True)
    return code
