"""What every egress sink implements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ddc.daemon import Service
from ddc.metrics import EgressMetrics
from ddc.protocol.record import Record

Done = Callable[[], None]


class Countdown:
    """Calls `done` once `count` records were settled with one() (at once when count is 0)."""

    __slots__ = ("done", "left")

    def __init__(self, count: int, done: Done) -> None:
        self.left = count
        self.done = done
        if count <= 0:
            done()

    def one(self, count: int = 1) -> None:
        self.left -= count
        if self.left <= 0 and count:
            self.done()


class Sink:
    """Delivers reassembled records to the target; send() runs in the egress's deliver greenlet.

    The delivery contract (the spool between reassembly and the sink is released by it):
    send(records, done) hands the records over; the sink calls done() exactly once, when every
    one of them is *settled*: confirmed by the target as far as the target can confirm (see
    docs/spool.md: the broker's ack, the dedup service's 200, written to the socket or file,
    sent as a datagram), or dropped for a reason about the record itself and counted
    (metrics.records_dropped.labels(reason=...)) with an ERROR log. done() may be called inside
    send() or later from another greenlet, and for different sends in any order. A target that
    is down is never a reason to drop: the sink keeps the records and retries, and the deliverer
    sends no more than its in-flight window (bytes, and `window_records` when set) meanwhile.
    What is not settled when the egress stops stays in a disk spool and is delivered again after
    the restart (at-least-once). send() may block cooperatively (gevent) but must not raise for
    target outages.
    """

    # True when send() takes records whose value is a memoryview or bytearray (saves a copy of
    # every raw chunk); sinks that hand values to libraries expecting bytes leave it False.
    accepts_views = False
    # at most this many records in flight (None: only the deliverer's byte bound applies)
    window_records: int | None = None

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

    def send(self, records: list[Record], done: Done) -> None:
        raise NotImplementedError

    def stop(self, timeout: float) -> None:
        """Deliver what is in flight within timeout, then close (what is left unsettled is not
        counted here: the deliverer knows whether the spool keeps it)."""

    def health(self) -> dict[str, Any]:
        """Extra fields for /healthz; include "sink_ok": bool when the sink can tell."""
        return {}

    def supervised_health(self, ok: bool, *names: str) -> dict[str, Any]:
        """ "sink_ok" of a sink whose greenlets `names` run under supervision: false while one of
        them is failing (the first one's failure then in "sink_error"), else the sink's own
        state `ok`."""
        for name in names:
            failure = self.owner.failing(name)
            if failure is not None:
                return {"sink_ok": False, "sink_error": failure}
        return {"sink_ok": ok}


class TargetSink(Sink):
    """A sink that writes each record's value (views accepted) to the one host:port `target`."""

    accepts_views = True

    def __init__(self, config: dict[str, Any], metrics: EgressMetrics) -> None:
        super().__init__(config, metrics)
        self.target = config["target"]
