"""The egress `dedup` sink: posts record batches to a dedup service (`POST {url}/v1/records`).

    [egress.sink]
    type = "dedup"
    url = "http://127.0.0.1:8080"
    link = "a"                    # this pair's name for the dedup service

A record that came from Kafka gets a `ddc-src` header "topic/partition/offset" (unless it has one),
so that `id_from = "source"` identifies it exactly on every link, also when the spool delivers it
again after a crash. A batch travels as one records-envelope batch (the wire protocol's, with
its CRC-32; `Content-Type: application/vnd.ddc.records`, the link in the query), not as JSON:
no base64 or JSON per record on either side. A dedup service of a version before batches answers
such a body 400 `invalid_json`: the sink then says so once (WARNING) and posts JSON to it from
then on, base64 per key, value and header (the same batch again: nothing is dropped). A record is
settled
when the service answered 200 to the POST carrying it. While the service is unreachable (or
answers 5xx/503/408/429) the batch is retried every retry_interval and the records wait (the
deliverer's window, at most buffer_max_records of them, in memory; the rest in the spool).
Records the service rejects are dropped and counted (4xx: "dedup_rejected"; no id:
"dedup_invalid").

    token_file = "dedup.token"    # the service's api_token_file: sent as Authorization: Bearer

A 401/403 (token missing, wrong, or none configured on the service) is an outage, not a
rejection: the records stay buffered and are retried, and the log says to check the token.

A batch holds up to batch_max_records records (2000: the service's cost per request is about
that of 100 records) and stops growing past BATCH_BYTES of keys and values (8 MiB, well under
the service's max_request_size of 64 MiB), whichever comes first. A 413 halves the batch size (a
lone record still refused is dropped as "dedup_rejected"); each batch accepted after that adds a
tenth of batch_max_records back, up to batch_max_records (additive increase: one oversized
record does not shrink every later batch to one record).

    max_in_flight = 4             # POSTs at once, each on its own connection

Each of `max_in_flight` senders takes the next batch off the buffer and posts it; a batch stays
with its sender until it is settled (a failed or restarted sender posts it again), so a round
trip to the service no longer bounds the link's rate. Batches posted at once may be forwarded
by the service in either order; max_in_flight = 1 keeps this link's order.
"""

from __future__ import annotations

import binascii
import functools
import http.client
import json
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import urlencode, urlsplit

from gevent.event import Event

from ddc.egress.sinks.base import Countdown, Done, Sink
from ddc.egress.sinks.dedup_client import DedupConnection, DedupHTTPSConnection
from ddc.kafka.records import SRC_HEADER
from ddc.kafka.records import source_id as source_of
from ddc.logs import ThrottledLog
from ddc.metrics import EgressMetrics
from ddc.protocol.envelope import MEDIA_TYPE, encode_records
from ddc.protocol.record import Record
from ddc.tokens import bearer_header, optional_token

log = logging.getLogger(__name__)

Entry = tuple[Record, Countdown]  # a record and the countdown of the send() it came with

LOG_EVERY = 10.0  # seconds between repeated drop/outage log lines
GROWTH_STEPS = 10  # accepted batches to grow back from 1 record to batch_max_records
BATCH_BYTES = 8 * 1024**2  # a batch takes no more record once its keys and values reach this
SENDER = "dedup-sink"  # the supervised sender greenlet's name
RESTART_DELAY = 1.0  # seconds before a failed sender runs again


def _b64(data: bytes | None) -> str | None:
    """base64.b64encode without its Python wrapper (what it runs)."""
    return None if data is None else binascii.b2a_base64(data, newline=False).decode("ascii")


def to_json(record: Record) -> dict[str, Any]:
    """The JSON form of a for_service() record; the first header of a name wins."""
    headers: dict[str, str | None] = {}
    for name, value in record.headers:
        headers.setdefault(name, _b64(value))
    return {"key": _b64(record.key), "value": _b64(record.value), "headers": headers}


def refuses_batches(payload: bytes) -> bool:
    """Whether a 400 is a dedup service's that takes only JSON bodies (it read a batch as JSON)."""
    try:
        answer = json.loads(payload)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("code") == "invalid_json"


def for_service(record: Record) -> Record:
    """What the service takes of a record: key, value and headers, a record from Kafka with its
    `ddc-src` header (unless it has one)."""
    headers = record.headers
    source = source_of(record)
    if source is not None and all(name != SRC_HEADER for name, _ in headers):
        headers = [*headers, (SRC_HEADER, source.encode())]
    return Record(record.value, record.key, None, -1, -1, -1, headers)


class DedupSink(Sink):
    def __init__(self, config: dict[str, Any], metrics: EgressMetrics) -> None:
        super().__init__(config, metrics)
        url = urlsplit(config["url"])
        self.scheme, self.netloc = url.scheme, url.netloc
        path = url.path.rstrip("/") + "/v1/records"
        # by body: a records batch (link in the query), or JSON for a service without batches
        self.paths = {True: path + "?" + urlencode({"link": config["link"]}), False: path}
        self.binary = True
        self.buffer: deque[Entry] = deque()
        self.window_records = config["buffer_max_records"]
        self.batch_size = config["batch_max_records"]
        self.wake = Event()
        self.stopped = Event()  # ends a retry's wait
        self.stopping = False
        self.ok = True
        senders = config["max_in_flight"]
        self.names = [f"{SENDER}-{slot}" for slot in range(senders)]
        # per sender: the batch it posts until it is settled, and its connection
        self.batches: list[list[Entry] | None] = [None] * senders
        self.conns: list[http.client.HTTPConnection | None] = [None] * senders
        self._drop_log = ThrottledLog(log, LOG_EVERY)
        self._outage_log = ThrottledLog(log, LOG_EVERY, logging.WARNING)
        token = optional_token(config.get("token_file"), "egress.sink.token_file")
        auth = bearer_header(token)
        self.headers = {
            True: {"Content-Type": MEDIA_TYPE, **auth},
            False: {"Content-Type": "application/json", **auth},
        }

    # --- the egress side -------------------------------------------------------------------

    def start(self) -> None:
        for slot, name in enumerate(self.names):
            self.owner.supervise(
                functools.partial(self._run, slot), name=name, restart_delay=RESTART_DELAY
            )

    def send(self, records: list[Record], done: Done) -> None:
        countdown = Countdown(len(records), done)
        self.buffer.extend((record, countdown) for record in records)
        self.wake.set()

    def stop(self, timeout: float) -> None:
        self.stopping = True
        self.wake.set()
        self.stopped.set()
        deadline = time.monotonic() + timeout
        for name in self.names:
            sender = self.owner.supervised(name)
            if sender is not None:
                sender.join(timeout=max(0.0, deadline - time.monotonic()))
                sender.kill(timeout=1.0)
        left = self.buffered()
        if left:
            log.info("dedup sink stopped with %d record(s) not confirmed", left)
        self.buffer.clear()
        self.batches = [None] * len(self.batches)
        for slot in range(len(self.conns)):
            self._close(slot)

    def buffered(self) -> int:
        """Records handed to the sink and not settled: waiting, and in the batches posted."""
        return len(self.buffer) + sum(len(batch) for batch in self.batches if batch)

    def health(self) -> dict[str, Any]:
        return {**self.supervised_health(self.ok, *self.names), "dedup_buffered": self.buffered()}

    # --- the sender greenlet ---------------------------------------------------------------

    def _drop(self, count: int, reason: str, why: str, force: bool = False) -> None:
        self.metrics.records_dropped.labels(reason=reason).inc(count)
        self._drop_log(
            reason,
            "dedup sink: %d record(s) dropped: %s (reason %s)",
            count,
            why,
            reason,
            force=force,
        )

    def _take(self) -> list[Entry]:
        """The next batch off the buffer: up to batch_size records, BATCH_BYTES of them."""
        buffer, batch, size = self.buffer, [], 0
        for _ in range(min(self.batch_size, len(buffer))):
            entry = buffer.popleft()
            batch.append(entry)
            record = entry[0]
            size += len(record.value or b"") + len(record.key or b"")
            if size >= BATCH_BYTES:
                break
        return batch

    def _run(self, slot: int) -> None:
        """Sender `slot`: posts its batch until it is settled, then takes the next one off the
        buffer, until stopped (restarted after a failure: its batch is still in
        self.batches[slot], so it is posted again)."""
        self._close(slot)  # a restart does not reuse a connection left in an unknown state
        while True:
            batch = self.batches[slot]
            if batch is None:
                if not self.buffer:
                    if self.stopping:
                        return
                    self.wake.clear()
                    self.wake.wait()
                    continue
                batch = self.batches[slot] = self._take()
            outcome = self._post(slot, [record for record, _ in batch])
            if outcome == "resend":  # smaller: the rest goes back to the head of the buffer
                self.batches[slot] = batch[: self.batch_size]
                self.buffer.extendleft(reversed(batch[self.batch_size :]))
                continue
            if outcome == "retry":
                self.ok = False
                self.metrics.sink_errors.inc()
                if self.stopping:
                    return
                self.stopped.wait(self.config["retry_interval"])
                continue
            self.batches[slot] = None
            for _, countdown in batch:
                countdown.one()

    def _close(self, slot: int) -> None:
        conn = self.conns[slot]
        if conn is not None:
            conn.close()
            self.conns[slot] = None

    def _grow(self) -> None:
        limit = self.config["batch_max_records"]
        if self.batch_size < limit:
            self.batch_size = min(limit, self.batch_size + max(1, limit // GROWTH_STEPS))

    def _post(self, slot: int, batch: list[Record]) -> str:
        """ "done" (delivered, or rejected and counted), "resend" (smaller) or "retry" (later)."""
        binary = self.binary
        records = [for_service(record) for record in batch]
        if binary:
            body = encode_records(records)
        else:
            body = json.dumps(
                {"link": self.config["link"], "records": [to_json(record) for record in records]}
            ).encode()
        try:
            conn = self.conns[slot]
            if conn is None:
                kind = DedupHTTPSConnection if self.scheme == "https" else DedupConnection
                conn = self.conns[slot] = kind(self.netloc, timeout=self.config["timeout"])
            conn.request("POST", self.paths[binary], body=body, headers=self.headers[binary])
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._close(slot)
            self._outage_log(
                "unreachable",
                "dedup service %s unreachable (%r); buffering",
                self.config["url"],
                exc,
            )
            return "retry"
        if response.status == 200:
            self.ok = True
            self._grow()
            try:
                invalid = json.loads(payload).get("invalid", 0)
            except (ValueError, AttributeError):
                invalid = 0
            if invalid:
                self._drop(invalid, "dedup_invalid", "the dedup service found no id in them")
            return "done"
        if binary and response.status == 400 and refuses_batches(payload):
            if self.binary:
                self.binary = False
                log.warning(
                    "dedup service %s takes no record batches (an older version: it answered "
                    "400 invalid_json); posting JSON to it from now on",
                    self.config["url"],
                )
            return "resend"
        if response.status == 413 and len(batch) > 1:
            self.batch_size = min(self.batch_size, max(1, len(batch) // 2))
            log.warning(
                "dedup service refused a batch of %d; now sending %d", len(batch), self.batch_size
            )
            return "resend"
        if response.status in (401, 403):
            self._outage_log(
                "token",
                "dedup service refused this sink's token (HTTP %d: %s): check [egress.sink] "
                "token_file against the service's api_token_file; buffering",
                response.status,
                payload[:200],
            )
            return "retry"
        if response.status >= 500 or response.status in (408, 429):
            self._outage_log(
                "unavailable",
                "dedup service answered %d (%s); retrying every %.1fs",
                response.status,
                payload[:200],
                self.config["retry_interval"],
            )
            return "retry"
        self._drop(
            len(batch), "dedup_rejected", f"HTTP {response.status}: {payload[:200]!r}", force=True
        )
        return "done"
