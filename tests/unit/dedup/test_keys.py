import pytest

from ddc.protocol.record import Record
from dedup_service.errors import InvalidRecord
from dedup_service.keys import IdSpec, extract_id, fingerprint, parse_id_from, text_of


@pytest.mark.parametrize(
    "text, spec",
    [
        ("id", IdSpec("id")),
        ("key", IdSpec("key")),
        ("source", IdSpec("source")),
        ("hash", IdSpec("hash")),
        ("header:trace-id", IdSpec("header", header="trace-id")),
        ("json:order.items.0.sku", IdSpec("json", path=("order", "items", "0", "sku"))),
    ],
)
def test_parse_id_from(text, spec):
    assert parse_id_from(text) == spec
    assert str(spec) == text


@pytest.mark.parametrize("text", ["", "ids", "header:", "json:", "json:a..b", "key:x"])
def test_parse_id_from_rejects(text):
    with pytest.raises(ValueError, match="expected id | key"):
        parse_id_from(text)


def record(**kwargs):
    return Record(
        value=kwargs.pop("value", b'{"order": {"id": 42, "items": [{"sku": "A-1"}]}}'), **kwargs
    )


def test_explicit_id_then_ddc_id_header():
    assert extract_id(IdSpec("id"), record(), "given") == "given"
    assert extract_id(IdSpec("id"), record(headers=[("ddc-id", b"hdr")])) == "hdr"
    with pytest.raises(InvalidRecord, match="no id"):
        extract_id(IdSpec("id"), record())


def test_key_header_source():
    rec = record(key=b"k1", headers=[("trace", b"t-9"), ("ddc-src", b"orders/3/1200")])
    assert extract_id(IdSpec("key"), rec) == "k1"
    assert extract_id(IdSpec("header", header="trace"), rec) == "t-9"
    assert extract_id(IdSpec("source"), rec) == "orders/3/1200"
    with pytest.raises(InvalidRecord, match="'other'"):
        extract_id(IdSpec("header", header="other"), rec)
    with pytest.raises(InvalidRecord, match="no key"):
        extract_id(IdSpec("key"), record())
    with pytest.raises(InvalidRecord, match="ddc-src"):
        extract_id(IdSpec("source"), record())


def test_binary_key_becomes_base64_text():
    assert text_of(b"\xff\x00") == "b64:/wA="
    assert extract_id(IdSpec("key"), record(key=b"\xff\x00")) == "b64:/wA="


def test_json_paths():
    rec = record()
    assert extract_id(parse_id_from("json:order.id"), rec) == "42"
    assert extract_id(parse_id_from("json:order.items.0.sku"), rec) == "A-1"
    with pytest.raises(InvalidRecord, match="no field 'order.nope'"):
        extract_id(parse_id_from("json:order.nope"), rec)
    with pytest.raises(InvalidRecord, match="not a string or an integer"):
        extract_id(parse_id_from("json:order"), rec)
    with pytest.raises(InvalidRecord, match="not JSON"):
        extract_id(parse_id_from("json:a"), record(value=b"\x00 not json"))


def test_hash_depends_on_key_and_value():
    spec = IdSpec("hash")
    a = extract_id(spec, Record(value=b"v", key=b"k"))
    assert len(a) == 32
    assert a == extract_id(spec, Record(value=b"v", key=b"k", headers=[("x", b"y")]))
    assert a != extract_id(spec, Record(value=b"v", key=None))
    assert a != extract_id(spec, Record(value=b"kv", key=b""))


def test_fingerprint_is_content_only():
    assert fingerprint(Record(value=b"v", key=b"k")) == fingerprint(
        Record(value=b"v", key=b"k", topic="other", offset=5)
    )
    assert fingerprint(Record(value=b"v")) != fingerprint(Record(value=b"w"))
    assert len(fingerprint(Record(value=b"v"))) == 16


def test_overlong_id_is_invalid():
    with pytest.raises(InvalidRecord, match="longer than 1024"):
        extract_id(IdSpec("key"), record(key=b"x" * 1025))


@pytest.mark.parametrize(
    "value, expected",
    [
        (b'{"id": 12345678901234567890123}', "12345678901234567890123"),  # orjson: a float
        (b'{"id": -98765432109876543210}', "-98765432109876543210"),
        (b'{"id": "a", "id": "b"}', "b"),  # the last of duplicate keys, as json
        (b'\xef\xbb\xbf{"id": "bom"}', "bom"),  # json reads a UTF-8 BOM; orjson refuses it
        ('{"id": "utf16"}'.encode("utf-16"), "utf16"),
        (b'{"id": "\\ud800"}', "\ud800"),  # a lone surrogate: json takes it (the claim's
        (b'{"id": 7, "x": NaN}', "7"),  # encoding refuses it later), orjson does not
    ],
)
def test_json_ids_are_what_json_reads(value, expected):
    assert extract_id(parse_id_from("json:id"), record(value=value)) == expected


@pytest.mark.parametrize(
    "value", [b'{"id": 1.5}', b'{"id": 1e400}', b'{"id": true}', b"[" * 100_000 + b"]" * 100_000]
)
def test_json_ids_that_are_not_ids(value):
    with pytest.raises(InvalidRecord, match="not a string or an integer|not JSON"):
        extract_id(parse_id_from("json:id"), record(value=value))
