"""What every egress sink implements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent

from ddc.protocol.record import Record


class Sink:
    """Delivers reassembled records to the target; send() runs in the egress's deliver greenlet.

    There is no back-pressure across a diode: a sink that cannot deliver buffers up to a bound,
    then drops *and counts* (metrics.records_dropped.labels(reason=...)) with an ERROR log.
    send() may block cooperatively (gevent) but must not raise for target outages.
    """

    # True when send() takes records whose value is a memoryview or bytearray (saves a copy of
    # every raw chunk); sinks that hand values to libraries expecting bytes leave it False.
    accepts_views = False

    def __init__(self, config: dict[str, Any], metrics: Any) -> None:
        self.config = config
        self.metrics = metrics
        # The egress replaces this with its Service.spawn before start(), so a sink's background
        # greenlets are owned by the daemon's Group and a crash in one stops the process.
        self.spawn: Callable[..., gevent.Greenlet] = gevent.spawn

    def start(self) -> None:
        """Open connections; raise only for errors the operator must fix."""

    def send(self, records: list[Record]) -> None:
        raise NotImplementedError

    def stop(self, timeout: float) -> None:
        """Flush what is buffered within timeout, then close."""

    def health(self) -> dict[str, Any]:
        """Extra fields for /healthz; include "sink_ok": bool when the sink can tell."""
        return {}
