"""POSTs each batch as JSON to an HTTP endpoint; any 2xx acknowledges the whole batch.

Body: {"records": [{"key": base64|null, "value": base64|null, "headers": {name: base64|null}}]};
a null value is a Kafka tombstone. Each record's dedup id is in its `ddc-dedup-id` header, and
the request carries an `Idempotency-Key`: the id of a one-record batch, else "sha256:" and the
hex digest of the batch's ids joined by newlines (the same batch sent again has the same key).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import threading
from typing import Any
from urllib.parse import urlsplit

from ddc.protocol.record import Record
from dedup_service.errors import SinkFailed
from dedup_service.keys import IDEMPOTENCY_HEADER
from dedup_service.sinks.base import Sink


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def encode_batch(records: list[Record]) -> bytes:
    return json.dumps(
        {
            "records": [
                {
                    "key": _b64(record.key),
                    "value": _b64(record.value),
                    "headers": {name: _b64(value) for name, value in record.headers},
                }
                for record in records
            ]
        }
    ).encode()


def idempotency_key(records: list[Record]) -> str:
    ids = [
        (value or b"").decode("utf-8", "replace")
        for record in records
        for name, value in record.headers
        if name == IDEMPOTENCY_HEADER
    ]
    if len(ids) == 1:
        return ids[0]
    return "sha256:" + hashlib.sha256("\n".join(ids).encode()).hexdigest()


class HttpSink(Sink):
    carries_tombstones = True  # a null value is sent as JSON null

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.url = urlsplit(config["url"])
        self.lock = threading.Lock()
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            kind = (
                http.client.HTTPSConnection
                if self.url.scheme == "https"
                else http.client.HTTPConnection
            )
            self.conn = kind(self.url.netloc, timeout=self.config["timeout"])
        return self.conn

    def send(self, records: list[Record]) -> None:
        body = encode_batch(records)
        path = (self.url.path or "/") + (f"?{self.url.query}" if self.url.query else "")
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key(records),
            **self.config["headers"],
        }
        with self.lock:
            try:
                conn = self._connection()
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                detail = response.read()[:200]
            except (OSError, http.client.HTTPException) as exc:
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                raise SinkFailed(f"POST {self.config['url']}: {exc!r}") from exc
        if not 200 <= response.status < 300:
            raise SinkFailed(f"POST {self.config['url']}: HTTP {response.status} {detail!r}")

    def stop(self, timeout: float) -> None:
        with self.lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None
