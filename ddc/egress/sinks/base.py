"""What every egress sink implements."""

from __future__ import annotations

from typing import Any

from ddc.daemon import Service
from ddc.metrics import EgressMetrics
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

    def __init__(self, config: dict[str, Any], metrics: EgressMetrics) -> None:
        self.config = config
        self.metrics = metrics
        # The egress sets itself as the owner before start(): a sink runs its background
        # greenlets with owner.supervise() (restarted after a failure, which it reports as
        # "sink_ok": false while owner.failing(name)) or owner.spawn() (a failure ends the
        # process). Never a bare gevent.spawn: nothing may die silently.
        self.owner = Service()

    def start(self) -> None:
        """Open connections; raise only for errors the operator must fix."""

    def send(self, records: list[Record]) -> None:
        raise NotImplementedError

    def stop(self, timeout: float) -> None:
        """Flush what is buffered within timeout, then close."""

    def health(self) -> dict[str, Any]:
        """Extra fields for /healthz; include "sink_ok": bool when the sink can tell."""
        return {}

    def supervised_health(self, name: str, ok: bool) -> dict[str, Any]:
        """ "sink_ok" of a sink whose greenlet `name` runs under supervision: false while that
        greenlet is failing (its failure then in "sink_error"), else the sink's own state `ok`."""
        failure = self.owner.failing(name)
        if failure is not None:
            return {"sink_ok": False, "sink_error": failure}
        return {"sink_ok": ok}
