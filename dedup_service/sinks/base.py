"""What every dedup sink implements: a send that returns only once the target acknowledged."""

from __future__ import annotations

import logging
from typing import Any

from ddc.protocol.record import Record
from dedup_service.errors import SinkFailed

log = logging.getLogger(__name__)


class Sink:
    """Where the first copy of each record goes.

    send() returns when every record was acknowledged (written, flushed, produced with acks, ...);
    otherwise it raises errors.SinkFailed naming the indices that were delivered, so that the
    forwarder commits those claims and releases the others. Sends may come from several greenlets.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.ok = True

    def start(self) -> None:
        """Open connections; raise only for errors the operator must fix."""

    def send(self, records: list[Record]) -> None:
        raise NotImplementedError

    def stop(self, timeout: float) -> None:
        """Flush and close."""

    def find_forwarded(self, ids: list[str], since_ms: int) -> set[str] | None:
        """Which of `ids` the target already holds, of records sent since `since_ms` (epoch ms),
        by their idempotency key; None when this sink cannot tell (the forwarder then forwards
        them again)."""
        return None

    def health(self) -> dict[str, Any]:
        return {"sink": self.config["type"], "sink_ok": self.ok}


class ConnectingSink(Sink):
    """A sink with a client that connects (the Kafka sinks): start() connects once, and an
    unreachable target is logged, not raised: sends fail (503) until it is back."""

    def _connect(self) -> Any:
        raise NotImplementedError

    def start(self) -> None:
        try:
            self._connect()
        except SinkFailed as exc:  # an outage, not a config error
            log.error("%s; records are refused (503) until it is reachable", exc)
