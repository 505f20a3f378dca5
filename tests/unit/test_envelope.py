"""The records envelope: round trip, corruption detection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddc.errors import EnvelopeError
from ddc.protocol.envelope import decode_records, encode_records, record_size
from ddc.protocol.record import Record

records = st.builds(
    Record,
    value=st.none() | st.binary(max_size=2000),
    key=st.none() | st.binary(max_size=100),
    topic=st.none() | st.text(min_size=1, max_size=40),
    partition=st.integers(-1, 2**31 - 1),
    offset=st.integers(-1, 2**63 - 1),
    timestamp=st.integers(-1, 2**63 - 1),
    headers=st.lists(
        st.tuples(st.text(max_size=20), st.none() | st.binary(max_size=50)), max_size=5
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(records | st.binary(max_size=500), max_size=30))
def test_round_trip(items):
    decoded = decode_records(encode_records(items))
    expected = [Record(item) if isinstance(item, bytes) else item for item in items]
    assert decoded == expected


def test_record_size_is_exact_for_plain_values():
    assert len(encode_records([b"abc", b""])) == 14 + record_size(b"abc") + record_size(b"")


@pytest.mark.parametrize("cut", [1, 10, 20])
def test_truncation_and_bit_flips_are_detected(cut):
    chunk = bytearray(
        encode_records([Record(b"v" * 100, key=b"k", topic="t", headers=[("h", b"x")])])
    )
    with pytest.raises(EnvelopeError):
        decode_records(chunk[:-cut])
    chunk[30] ^= 0x01
    with pytest.raises(EnvelopeError, match="checksum"):
        decode_records(chunk)


def test_wrong_magic_and_version():
    with pytest.raises(EnvelopeError, match="magic"):
        decode_records(b"XXXX" + bytes(10))
    chunk = bytearray(encode_records([b"a"]))
    chunk[4] = 9
    with pytest.raises(EnvelopeError, match="version 9"):
        decode_records(chunk)
