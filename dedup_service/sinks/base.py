"""What every dedup sink implements: a send that returns only once the target acknowledged."""

from __future__ import annotations

from typing import Any

from ddc.protocol.record import Record


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

    def health(self) -> dict[str, Any]:
        return {"sink": self.config["type"], "sink_ok": self.ok}
