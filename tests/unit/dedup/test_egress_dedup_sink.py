"""The egress dedup sink's record encoding, its buffer bound and its supervised sender (no sockets)."""

import base64
import functools

from ddc.egress.sinks.dedup import DedupSink, for_service, source_of
from ddc.metrics import EgressMetrics
from ddc.protocol.envelope import decode_records, encode_records
from ddc.protocol.record import Record


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


CONFIG = {
    "type": "dedup",
    "url": "http://127.0.0.1:9",
    "link": "a",
    "batch_max_records": 10,
    "timeout": 1.0,
    "retry_interval": 0.1,
    "buffer_max_records": 5,
    "max_in_flight": 1,
}


def test_kafka_records_get_a_source_header_and_lose_their_origin_fields():
    record = Record(
        value=b"v", key=b"k", topic="orders", partition=2, offset=41, headers=[("h", b"1")]
    )
    assert source_of(record) == "orders/2/41"
    assert for_service(record) == Record(
        b"v", b"k", None, -1, -1, -1, [("h", b"1"), ("ddc-src", b"orders/2/41")]
    )


def test_existing_source_header_and_plain_records_are_kept():
    record = Record(value=b"v", topic="t", partition=0, offset=1, headers=[("ddc-src", b"up/1/2")])
    assert for_service(record).headers == [("ddc-src", b"up/1/2")]
    plain = Record(value=b"v", key=None)
    assert source_of(plain) is None
    assert for_service(plain) == Record(b"v", None, None, -1, -1, -1, [])
    tombstone = Record(value=None, key=b"k", headers=[("h", b"1"), ("h", b"2"), ("n", None)])
    sent = decode_records(encode_records([for_service(tombstone)]))
    assert sent == [Record(None, b"k", None, -1, -1, -1, [("h", b"1"), ("h", b"2"), ("n", None)])]


def test_sends_are_settled_by_the_services_200_and_nothing_dropped_at_stop(monkeypatch):
    import gevent

    metrics = EgressMetrics()
    sink = DedupSink(CONFIG, metrics)
    assert sink.window_records == 5  # the deliverer keeps at most this many in flight
    outcomes = ["retry", "done", "done"]
    posted: list[int] = []

    def post(slot, batch):
        posted.append(len(batch))
        return outcomes.pop(0) if outcomes else "done"

    monkeypatch.setattr(sink, "_post", post)
    calls: list[str] = []
    sink.start()
    sink.send([Record(value=b"%d" % i) for i in range(4)], lambda: calls.append("first"))
    sink.send([Record(value=b"%d" % i) for i in range(4)], lambda: calls.append("second"))
    gevent.sleep(0.3)
    assert posted[0] == 8 and posted[1] == 8  # retried after the outage, then confirmed
    assert calls == ["first", "second"]
    sink.send([Record(value=b"x")], lambda: calls.append("third"))
    sink.stop(0.1)
    dropped = metrics.registry.get_sample_value(
        "ddc_egress_records_dropped_total", {"reason": "shutdown"}
    )
    assert not dropped  # what was not confirmed stays in the spool


def test_a_dying_sender_is_restarted_and_health_is_degraded_until_it_is_stable(monkeypatch):
    import gevent
    from gevent.event import Event

    from ddc import daemon
    from ddc.egress.sinks import dedup

    monkeypatch.setattr(dedup, "RESTART_DELAY", 0.05)
    monkeypatch.setattr(daemon, "STABLE_AFTER", 0.3)
    metrics = EgressMetrics()
    sink = DedupSink(CONFIG, metrics)
    posted: list[int] = []
    delivered = Event()

    def post(slot, batch):
        posted.append(len(batch))
        if len(posted) == 1:
            raise RuntimeError("sender bug")
        delivered.set()
        return "done"

    monkeypatch.setattr(sink, "_post", post)
    assert sink.health()["sink_ok"] is True
    sink.start()
    sink.send([Record(value=b"%d" % i) for i in range(3)], lambda: None)
    assert delivered.wait(5)
    # the restarted sender posted the batch the dead one held, nothing was dropped
    assert posted == [3, 3]
    assert sink.buffered() == 0
    assert sink.owner.restarts == {"dedup-sink-0": 1}
    health = sink.health()
    assert health["sink_ok"] is False
    assert "sender bug" in health["sink_error"]
    gevent.sleep(0.4)
    assert sink.health() == {"sink_ok": True, "dedup_buffered": 0}
    delivered.clear()
    sink.send([Record(value=b"%d" % i) for i in range(5)], lambda: None)
    assert delivered.wait(5)
    assert posted == [3, 3, 5]
    sink.stop(1.0)
    dropped = metrics.registry.get_sample_value(
        "ddc_egress_records_dropped_total", {"reason": "dedup_buffer_full"}
    )
    assert not dropped


def started_posting_through(sink: DedupSink, post, monkeypatch) -> list[str]:
    """Starts `sink` with `post(slot, batch)` in place of its HTTP POST; the list that the
    tests' `done` callbacks append to."""
    monkeypatch.setattr(sink, "_post", post)
    sink.start()
    return []


def test_batches_are_posted_at_once_and_settled_in_any_order(monkeypatch):
    import gevent
    from gevent.event import Event

    sink = DedupSink({**CONFIG, "max_in_flight": 3, "batch_max_records": 2}, EgressMetrics())
    answers = [Event() for _ in range(3)]
    posted: list[tuple[int, list[bytes]]] = []

    def post(slot, batch):
        posted.append((slot, [record.value for record in batch]))
        answers[len(posted) - 1].wait()
        return "done"

    calls = started_posting_through(sink, post, monkeypatch)
    for name in ("first", "second", "third"):
        sink.send(
            [Record(value=name.encode() + b"%d" % i) for i in range(2)],
            functools.partial(calls.append, name),
        )
    gevent.sleep(0.05)
    assert sorted(slot for slot, _ in posted) == [0, 1, 2]  # three POSTs in flight at once
    assert [values for _, values in posted] == [
        [b"first0", b"first1"],
        [b"second0", b"second1"],
        [b"third0", b"third1"],
    ]
    assert sink.health() == {"sink_ok": True, "dedup_buffered": 6}
    answers[2].set()
    gevent.sleep(0.02)
    assert calls == ["third"]
    answers[0].set()
    answers[1].set()
    gevent.sleep(0.02)
    assert calls == ["third", "first", "second"] and sink.buffered() == 0
    sink.stop(1.0)


def test_a_refused_batch_gives_its_tail_back_to_the_head_of_the_buffer(monkeypatch):
    import gevent

    sink = DedupSink({**CONFIG, "batch_max_records": 8}, EgressMetrics())
    posted: list[list[bytes]] = []

    def post(slot, batch):
        posted.append([record.value for record in batch])
        if len(batch) > 2:
            sink.batch_size = len(batch) // 2  # what a 413 does
            return "resend"
        return "done"

    calls = started_posting_through(sink, post, monkeypatch)
    sink.send([Record(value=b"%d" % i) for i in range(6)], lambda: calls.append("all"))
    gevent.sleep(0.1)
    assert posted[0] == [b"%d" % i for i in range(6)]
    flat = [value for batch in posted if len(batch) <= 2 for value in batch]
    assert flat == [b"%d" % i for i in range(6)]  # each record once, in order
    assert calls == ["all"]
    sink.stop(1.0)


def test_a_service_without_batches_gets_json_and_nothing_is_dropped():
    """A dedup service of a version before record batches (here a stand-in answering as it did:
    400 invalid_json to any body that is not JSON) gets the same batch again as JSON."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from gevent.event import Event

    from ddc.protocol.envelope import MEDIA_TYPE

    posted: list[tuple[str, str, bytes]] = []

    class OldService(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            path, _, query = self.path.partition("?")
            posted.append((self.headers["Content-Type"], query, body))
            try:
                answer = {"received": len(json.loads(body)["records"]), "invalid": 0}
                status = 200
            except ValueError:
                answer = {"code": "invalid_json", "status": 400, "message": "not JSON"}
                status = 400
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), OldService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    metrics = EgressMetrics()
    sink = DedupSink({**CONFIG, "url": f"http://127.0.0.1:{server.server_port}"}, metrics)
    settled = Event()
    try:
        sink.start()
        sink.send([Record(value=b"%d" % i, headers=[("h", b"x")]) for i in range(3)], settled.set)
        assert settled.wait(5)
        settled.clear()
        sink.send([Record(value=b"later")], settled.set)
        assert settled.wait(5)
    finally:
        sink.stop(1.0)
        server.shutdown()
    assert [(kind, query) for kind, query, _ in posted] == [
        (MEDIA_TYPE, "link=a"),
        ("application/json", ""),
        ("application/json", ""),
    ]
    assert json.loads(posted[1][2]) == {
        "link": "a",
        "records": [
            {"key": None, "value": b64(b"%d" % i), "headers": {"h": b64(b"x")}} for i in range(3)
        ],
    }
    dropped = metrics.registry.get_sample_value(
        "ddc_egress_records_dropped_total", {"reason": "dedup_rejected"}
    )
    assert not dropped


def test_a_batch_stops_taking_records_at_batch_bytes(monkeypatch):
    """batch_max_records bounds a batch's count, BATCH_BYTES its keys and values: big records
    go in smaller batches, none is split or left behind."""
    from ddc.egress.sinks import dedup as dedup_module

    monkeypatch.setattr(dedup_module, "BATCH_BYTES", 1000)
    sink = DedupSink({**CONFIG, "buffer_max_records": 100}, EgressMetrics())
    for size in (300, 300, 300, 300, 10, 2000, 5):
        sink.buffer.append((Record(value=b"v" * size, key=b"k"), None))
    taken = [[len(record.value) for record, _ in sink._take()] for _ in range(3)]
    assert taken == [[300, 300, 300, 300], [10, 2000], [5]]
    assert not sink.buffer
    sink.batch_size = 2
    sink.buffer.extend((Record(value=b"x"), None) for _ in range(3))
    assert len(sink._take()) == 2 and len(sink.buffer) == 1
