"""POST /v1/records with a records-envelope body (what the egress dedup sink sends): the same
answers as the JSON body, and every malformed batch refused whole with a 4xx naming why."""

from __future__ import annotations

import struct

from ddc.protocol.envelope import MEDIA_TYPE, Mark, encode_records
from ddc.protocol.record import Record
from tests.integration.dedup.conftest import b64, read_length_prefixed


def post_batch(server, body: bytes, query: str = "link=a"):
    return server.session.post(
        f"{server.url}/v1/records?{query}",
        data=body,
        headers={"Content-Type": MEDIA_TYPE},
        timeout=30,
    )


def test_a_batch_body_answers_as_the_json_body_does(dedup_server, tmp_path):
    out = tmp_path / "merged.bin"
    server = dedup_server(sink={"type": "file", "path": str(out)}, id_from="json:id")
    values = [b'{"id": "r-%d"}' % i for i in range(6)]
    batch = [Record(value) for value in values[:3]] + [Record(values[0]), Record(b"no json")]
    answer = post_batch(server, encode_records(batch))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["results"] == ["first", "first", "first", "duplicate", "invalid"]
    assert (body["forwarded"], body["duplicates"], body["invalid"]) == (3, 1, 1)
    # the other link's copies, as JSON: the same ids, duplicates
    json_body = {"link": "b", "records": [{"value": b64(value)} for value in values[:4]]}
    assert server.post("/v1/records", json_body).json()["results"] == [
        "duplicate",
        "duplicate",
        "duplicate",
        "first",
    ]
    assert read_length_prefixed(out) == values[:4]


def test_ids_headers_and_tombstones_travel_in_a_batch(dedup_server, tmp_path):
    out = tmp_path / "merged.bin"
    server = dedup_server(sink={"type": "file", "path": str(out)}, id_from="id")
    batch = [
        Record(b"one", headers=[("ddc-id", b"x-1"), ("ddc-id", b"ignored")]),
        Record(None, key=b"k", headers=[("ddc-id", b"x-2")]),  # a tombstone
        Record(b"three"),  # no id
    ]
    body = post_batch(server, encode_records(batch)).json()
    assert body["results"] == ["first", "first", "invalid"]
    assert server.get("/v1/ids/x-1").json()["state"] == "committed"
    assert server.get("/v1/ids/ignored").status_code == 404
    assert read_length_prefixed(out) == [b"one", b""]  # the file sink writes a tombstone empty


def test_malformed_batches_are_refused_whole(dedup_server):
    server = dedup_server(max_batch=10)
    good = encode_records([Record(b"v", headers=[("ddc-id", b"i")])])
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    cases = {
        "not a batch": (b"{}", "link=a", 400, "invalid_batch"),
        "bad checksum": (flipped, "link=a", 400, "invalid_batch"),
        "truncated": (good[:-2], "link=a", 400, "invalid_batch"),
        "trailing bytes": (good + b"x", "link=a", 400, "invalid_batch"),
        "version 2": (
            encode_records([Record(b"v")], [Mark("t", 0, 1, 0, -1, 0, 0, -1)]),
            "link=a",
            400,
            "invalid_batch",
        ),
        "empty": (encode_records([]), "link=a", 400, "invalid_batch"),
        "no link": (good, "", 400, None),
        "bad link name": (good, "link=a%20b", 400, None),
        "unknown link": (good, "link=zz", 400, "unknown_link"),
        "unknown parameter": (good, "link=a&x=1", 400, None),
        "over max_batch": (encode_records([Record(b"v")] * 11), "link=a", 413, "batch_too_large"),
    }
    for name, (body, query, status, code) in cases.items():
        answer = post_batch(server, body, query)
        assert answer.status_code == status, (name, answer.text)
        error = answer.json()
        assert error["status"] == status and error["message"], name
        if code is not None:
            assert error["code"] == code, (name, error)
    assert server.metric("ddc_dedup_records_received_total", link="a") == 0
    assert server.get("/healthz").status_code == 200


def test_a_huge_declared_count_is_refused_before_decoding(dedup_server):
    server = dedup_server(max_batch=10)
    header = struct.pack("<4sBBII", b"DDCR", 1, 0, 4_000_000_000, 0)  # a count, no records
    answer = post_batch(server, header)
    assert answer.status_code == 413 and answer.json()["code"] == "batch_too_large"


def test_the_openapi_document_names_both_bodies(dedup_server):
    spec = dedup_server().get("/openapi.json").json()
    post = spec["paths"]["/v1/records"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", MEDIA_TYPE}
    assert [(p["in"], p["name"], p["required"]) for p in post["parameters"]] == [
        ("query", "link", True)
    ]
