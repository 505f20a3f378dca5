"""`ddc replay -c ingress.toml --gaps FILE|URL`: resend exact lost Kafka records through the pair.

Rules (docs/operations.md, "Recovering lost records"):
* Replay runs the ingress pipeline itself, standalone, while the pair's ingress is stopped: an
  egress accepts one sender at a time (the pairing rule), so replay takes the sender's place for
  its run. It uses the ingress config's transport (destination, bind, packet size, rate,
  envelope) and filters, and sends what an ingress run sends: a StartUp burst, the records in
  v2 batches (so a loss during the replay is itself reported by /gaps), tail marks, Shutdown.
* It refuses to start while something answers on the ingress's `http_listen` (the ingress is
  running: stop it first; its graceful stop sends Shutdown, which frees the egress at once).
* Kafka is read outside the consumer group (ddc/kafka/fetch.py): assign, seek, never commit; the
  group's committed offsets never move.
* Per range the summary gives the report's count, what was read, filtered and sent, and names by
  offsets what is no longer in Kafka (below the log start: retention, deletion) or past its end.
* Exit 0: every range sent complete. 1: a range incomplete, gone, not a topic of this ingress,
  or a send failed. 2: bad config or unusable report, nothing sent.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from ddc.daemon import DRAIN_TIMEOUT, EXIT_CONFIG, EXIT_CRASH
from ddc.errors import ConfigError
from ddc.ingress.replay_plan import ReplayInputError, plan, read_report
from ddc.kafka.ranges import PartitionRange

log = logging.getLogger(__name__)

DEFAULT_SETTLE = 0.5  # seconds between the StartUp burst and the first record
DEFAULT_FETCH_TIMEOUT = 30.0


@dataclass(slots=True)
class RangeResult(PartitionRange):
    expected: int  # the report's count: records the ingress had sent in the range
    read: int = 0
    filtered: int = 0
    sent: int = 0
    gone: list[int] | None = None  # [first, last] no longer in Kafka
    beyond_log_end: list[int] | None = None
    error: str | None = None
    status: str = "pending"

    def finish(self) -> None:
        kept = self.read - self.filtered
        if self.error is not None:
            self.status = "failed"
        elif self.gone is not None or self.beyond_log_end is not None:
            self.status = "incomplete"
        elif kept < self.expected:
            self.status = "incomplete"
        else:
            # more than expected: the partition moved to another pair inside the lost window;
            # the extra records are duplicates the target's dedup drops
            self.status = "complete"


@dataclass
class Summary:
    ranges: list[RangeResult] = field(default_factory=list)
    not_ours: list[dict[str, Any]] = field(default_factory=list)
    already_recovered: list[dict[str, Any]] = field(default_factory=list)
    send_failures: int = 0

    @property
    def complete(self) -> bool:
        return (
            not self.not_ours
            and not self.send_failures
            and all(r.status == "complete" for r in self.ranges)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "ranges": [asdict(r) for r in self.ranges],
            "not_a_topic_of_this_ingress": self.not_ours,
            "already_recovered": self.already_recovered,
            "records_sent": sum(r.sent for r in self.ranges),
            "records_not_sent_send_errors": self.send_failures,
        }


def ingress_running(config: dict[str, Any]) -> str | None:
    """The URL of the ingress's /healthz when something answers there, else None."""
    import urllib.error
    import urllib.request

    listen = config.get("http_listen")
    if listen is None:
        return None
    host, port = listen
    host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    url = f"http://{host}:{port}/healthz" if ":" not in host else f"http://[{host}]:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2.0):
            return url
    except urllib.error.HTTPError:
        return url  # something answers
    except (OSError, ValueError):
        return None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="the pair's ingress TOML config")
    parser.add_argument(
        "--gaps", required=True, help="the egress's lost-record report: a file or its /gaps URL"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=DEFAULT_SETTLE,
        help="seconds between the StartUp burst and the first record (default %(default)s; "
        "raise it to the egress's heartbeat_timeout if the ingress did not stop gracefully)",
    )
    parser.add_argument(
        "--fetch-timeout",
        type=float,
        default=DEFAULT_FETCH_TIMEOUT,
        help="seconds without progress reading a range before it is given up",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=DRAIN_TIMEOUT, help="graceful stop limit (s)"
    )


def run(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()
    from ddc.config import load_ingress_config
    from ddc.daemon import config_error_exit, configure_logging

    try:
        config = load_ingress_config(args.config)
        configure_logging(config["log_level"])
        if config["source"]["type"] != "kafka":
            raise ConfigError("ingress.source.type", "replay reads Kafka: the source must be kafka")
        if config["transport"]["envelope"] != "records":
            raise ConfigError(
                "ingress.transport.envelope", 'replay sends records batches: must be "records"'
            )
        ranges, recovered = plan(read_report(args.gaps))
    except ConfigError as exc:
        return config_error_exit(exc)
    except ReplayInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    running = ingress_running(config)
    if running is not None:
        print(
            f"error: the ingress answers on {running}: stop it first (replay takes the sender's "
            "place in the pair; see docs/operations.md)",
            file=sys.stderr,
        )
        return EXIT_CRASH
    from ddc.ingress.replay_run import replay

    if recovered:
        log.info("%d ranges of the report were recovered already: not resent", len(recovered))
    try:
        code, summary = replay(config, ranges, args.settle, args.fetch_timeout, args.drain_timeout)
    except ConfigError as exc:
        return config_error_exit(exc)
    summary.already_recovered = recovered
    print(json.dumps(summary.as_json(), indent=1))
    if code != 0:
        return code
    return 0 if summary.complete else EXIT_CRASH
