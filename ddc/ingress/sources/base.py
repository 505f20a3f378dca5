"""What every ingress source implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gevent.event import Event

from ddc.metrics import IngressMetrics
from ddc.protocol.record import Record

# A source hands records to the pipeline with submit(records, ack). `records` holds Record
# objects or plain bytes (a value-only record, the cheap form for UDP/TCP sources). `ack`, when
# given, is called once every one of those records has been handed to the UDP socket (or was
# filtered out or dropped with a counter), in submission order: Kafka commits offsets from it.
Submit = Callable[[Sequence[Record | bytes], Callable[[], None] | None], None]


class Source:
    """Reads records from the outside world and submits them; runs in its own greenlet."""

    def __init__(self, config: dict[str, Any], submit: Submit, metrics: IngressMetrics) -> None:
        self.config = config
        self.submit = submit
        self.metrics = metrics
        # cleared while paused: run() waits on it before each read, and again after each wait
        # for data (a pause that came meanwhile holds what woke the reader until resume)
        self.running = Event()
        self.running.set()

    def start(self) -> None:
        """Open sockets/consumers; raise on errors the operator must fix (port in use...)."""

    def run(self) -> None:
        """The greenlet body: read and submit until stop() is called."""
        raise NotImplementedError

    def pause(self) -> None:
        """Stop reading (Kafka: leave the consumer group) until resume()."""
        self.running.clear()

    def resume(self) -> None:
        """Start reading again (Kafka: rejoin the group)."""
        self.running.set()

    def stop(self) -> None:
        """Stop reading; run() returns soon after."""

    def close(self, timeout: float) -> None:
        """After the pipeline has drained: final commits, leave groups, close sockets."""

    def health(self) -> dict[str, Any]:
        """Extra fields for /healthz."""
        return {}
