"""The egress `dedup` sink: posts record batches to a dedup service (`POST {url}/v1/records`).

    [egress.sink]
    type = "dedup"
    url = "http://127.0.0.1:8080"
    link = "a"                    # this pair's name for the dedup service

A record that came from Kafka gets a `ddc-src` header "topic/partition/offset" (unless it has one),
so that `id_from = "source"` identifies it exactly on every link. Keys, values and header values
travel base64-encoded. While the service is unreachable (or answers 5xx/503) batches wait in a
buffer of buffer_max_records and are retried every retry_interval; past the bound new records are
dropped and counted (records_dropped{reason="dedup_buffer_full"}), as are records the service
rejects (4xx: "dedup_rejected"; no id: "dedup_invalid") and what is left at shutdown ("shutdown").
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent.event import Event
from gevent.pool import Group

from ddc.egress.sinks.base import Sink
from ddc.kafka.records import SRC_HEADER
from ddc.kafka.records import source_id as source_of
from ddc.protocol.record import Record

log = logging.getLogger(__name__)

LOG_EVERY = 10.0  # seconds between repeated drop/outage log lines


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def to_json(record: Record) -> dict[str, Any]:
    """The /v1/records form of a record; the first header of a name wins."""
    headers: dict[str, str | None] = {}
    for name, value in record.headers:
        headers.setdefault(name, _b64(value))
    source = source_of(record)
    if source is not None and SRC_HEADER not in headers:
        headers[SRC_HEADER] = _b64(source.encode())
    return {"key": _b64(record.key), "value": _b64(record.value), "headers": headers}


class DedupSink(Sink):
    def __init__(self, config: dict[str, Any], metrics: Any) -> None:
        super().__init__(config, metrics)
        url = urlsplit(config["url"])
        self.scheme, self.netloc = url.scheme, url.netloc
        self.path = url.path.rstrip("/") + "/v1/records"
        self.buffer: deque[Record] = deque()
        self.batch_size = config["batch_max_records"]
        self.group = Group()
        self.wake = Event()
        self.stopping = False
        self.ok = True
        self.conn: http.client.HTTPConnection | None = None
        self._last_log: dict[str, float] = {}

    # --- the egress side -------------------------------------------------------------------

    def start(self) -> None:
        sender = self.group.spawn(self._run)
        sender.name = "dedup-sink"
        sender.link_exception(self._sender_failed)

    def send(self, records: list[Record]) -> None:
        room = self.config["buffer_max_records"] - len(self.buffer)
        if len(records) > room:
            dropped = len(records) - max(room, 0)
            self._drop(dropped, "dedup_buffer_full", "dedup service unreachable and buffer full")
            records = records[: max(room, 0)]
        if records:
            self.buffer.extend(records)
            self.wake.set()

    def stop(self, timeout: float) -> None:
        self.stopping = True
        self.wake.set()
        self.group.join(timeout=timeout)
        self.group.kill(timeout=1.0)
        if self.buffer:
            self._drop(
                len(self.buffer), "shutdown", "dedup sink stopped before delivering", force=True
            )
            self.buffer.clear()
        self._close()

    def health(self) -> dict[str, Any]:
        return {"sink_ok": self.ok, "dedup_buffered": len(self.buffer)}

    # --- the sender greenlet ---------------------------------------------------------------

    def _sender_failed(self, greenlet: gevent.Greenlet) -> None:
        log.error("dedup sink sender failed: %r", greenlet.exception, exc_info=greenlet.exc_info)

    def _log(self, kind: str, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last_log.get(kind, -LOG_EVERY) >= LOG_EVERY:
            self._last_log[kind] = now
            return True
        return False

    def _drop(self, count: int, reason: str, why: str, force: bool = False) -> None:
        self.metrics.records_dropped.labels(reason=reason).inc(count)
        if self._log(reason, force):
            log.error("dedup sink: %d record(s) dropped: %s (reason %s)", count, why, reason)

    def _run(self) -> None:
        while True:
            if not self.buffer:
                if self.stopping:
                    return
                self.wake.clear()
                self.wake.wait()
                continue
            batch = [self.buffer[i] for i in range(min(self.batch_size, len(self.buffer)))]
            outcome = self._post(batch)
            if outcome == "resend":
                continue
            if outcome == "retry":
                self.ok = False
                self.metrics.sink_errors.inc()
                if self.stopping:
                    return
                self.wake.clear()
                self.wake.wait(self.config["retry_interval"])
                continue
            for _ in batch:
                self.buffer.popleft()

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _post(self, batch: list[Record]) -> str:
        """ "done" (delivered, or rejected and counted), "resend" (smaller) or "retry" (later)."""
        body = json.dumps(
            {"link": self.config["link"], "records": [to_json(record) for record in batch]}
        ).encode()
        try:
            if self.conn is None:
                kind = (
                    http.client.HTTPSConnection
                    if self.scheme == "https"
                    else http.client.HTTPConnection
                )
                self.conn = kind(self.netloc, timeout=self.config["timeout"])
            self.conn.request(
                "POST", self.path, body=body, headers={"Content-Type": "application/json"}
            )
            response = self.conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._close()
            if self._log("unreachable"):
                log.warning("dedup service %s unreachable (%r); buffering", self.config["url"], exc)
            return "retry"
        if response.status == 200:
            self.ok = True
            try:
                invalid = json.loads(payload).get("invalid", 0)
            except (ValueError, AttributeError):
                invalid = 0
            if invalid:
                self._drop(invalid, "dedup_invalid", "the dedup service found no id in them")
            return "done"
        if response.status == 413 and len(batch) > 1:
            self.batch_size = max(1, len(batch) // 2)
            log.warning(
                "dedup service refused a batch of %d; now sending %d", len(batch), self.batch_size
            )
            return "resend"
        if response.status >= 500 or response.status in (408, 429):
            if self._log("unavailable"):
                log.warning(
                    "dedup service answered %d (%s); retrying every %.1fs",
                    response.status, payload[:200], self.config["retry_interval"],
                )  # fmt: skip
            return "retry"
        self._drop(
            len(batch), "dedup_rejected", f"HTTP {response.status}: {payload[:200]!r}", force=True
        )
        return "done"
