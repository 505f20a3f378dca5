"""kill -9 of the dedup service between forwarding a record and committing its claim: the record
is forwarded again (at-least-once), under the same idempotency key, and counted."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler

import requests

from dedup_service.sinks.file import read_with_ids
from devtools.harness import wait_until
from tests.integration.dedup.conftest import HTTPTarget


class Target(HTTPTarget):
    """An HTTP sink target that records each request's Idempotency-Key and records; it holds
    the first request (never answers it) so that the service is killed mid-forward."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[dict]]] = []
        self.release = threading.Event()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                target.seen.append((self.headers.get("Idempotency-Key", ""), body["records"]))
                if len(target.seen) == 1:
                    target.release.wait(30)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)

    def close(self) -> None:
        self.release.set()
        super().close()


def test_kill_9_between_forward_and_commit_reforwards_under_the_same_key(dedup_server):
    target = Target()
    try:
        server = dedup_server(
            pending_timeout="3s",
            sink={"type": "http", "url": f"http://127.0.0.1:{target.port}/in", "timeout": "3s"},
        )
        record = {"id": "order-42", "value": base64.b64encode(b"payload").decode()}
        body = {"link": "a", "records": [record]}

        def first_post() -> None:
            try:
                server.post("/v1/records", body, timeout=30)
            except requests.RequestException:
                pass  # the service dies under it: the egress would send the batch again

        poster = threading.Thread(target=first_post)
        poster.start()
        wait_until(lambda: len(target.seen) == 1, 10, message="the sink took the record")
        assert server.process is not None
        server.process.kill()  # kill -9: forwarded, never committed
        server.process.wait(10)
        poster.join(10)
        server.start()
        # the egress sends it again: after pending_timeout the claim is first again
        wait_until(
            lambda: server.post("/v1/records", body).json()["forwarded"] == 1,
            20,
            interval=0.5,
            message="the record forwarded again after its claim expired",
        )
        assert server.post("/v1/records", body).json()["duplicates"] == 1  # committed now
        assert len(target.seen) == 2
        (key1, records1), (key2, records2) = target.seen
        assert key1 == key2 == "order-42"
        assert records1 == records2
        assert records1[0]["headers"]["ddc-dedup-id"] == base64.b64encode(b"order-42").decode()
        assert server.metric("ddc_dedup_reforwarded_total") == 1
        assert "forwarded again" in server.log()
    finally:
        target.close()


def test_the_file_sink_writes_each_records_dedup_id_before_its_value(dedup_server, tmp_path):
    out = tmp_path / "with-ids.bin"
    server = dedup_server(sink={"type": "file", "path": str(out), "write_ids": True})
    records = [
        {"id": f"order-{i}", "value": base64.b64encode(b"v%d" % i).decode()} for i in range(3)
    ]
    assert server.post("/v1/records", {"link": "a", "records": records}).json()["forwarded"] == 3
    assert server.post("/v1/records", {"link": "b", "records": records}).json()["duplicates"] == 3
    assert list(read_with_ids(out.read_bytes())) == [
        (b"order-%d" % i, b"v%d" % i, False) for i in range(3)
    ]
