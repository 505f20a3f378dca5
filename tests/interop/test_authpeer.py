"""The independent trailer implementation (tests/interop/authpeer.py, no ddc import) and ddc's
agree: what one signs, the other verifies, for every message type."""

from __future__ import annotations

import os
import time

import pytest

from ddc.protocol import auth
from ddc.protocol.auth_keys import KeySet
from ddc.protocol.auth_session import ACCEPTED, BAD_TAG, NEW_SESSION, AuthReceiver
from ddc.protocol.wire import encode_header
from tests.interop import authpeer

KEY = os.urandom(32)
DESC = {"name": "peer", "envelope": "raw", "max_packet_size": 1472, "fec": None}


def test_peer_signed_session_is_accepted_by_ddc():
    sid = os.urandom(8)
    now = int(time.time() * 1000)
    rx = AuthReceiver(KeySet.of({4: KEY}))
    assert rx.check(authpeer.startup(4, KEY, sid, now, DESC)) == NEW_SESSION
    assert rx.session.info.descriptor == DESC and rx.session.start_time_ms == now
    for seq in range(3):
        assert rx.check(authpeer.data(4, KEY, sid, seq, b"record %d" % seq)) == ACCEPTED
    heartbeat = authpeer.sign(4, KEY, sid, authpeer.header(authpeer.HEARTBEAT, 3, 0))
    assert rx.check(heartbeat) == ACCEPTED
    bad = authpeer.data(4, os.urandom(32), sid, 3, b"forged")
    assert rx.check(bad) == BAD_TAG


@pytest.mark.parametrize("kind", [1, 2, 3, 4, 5, 6])
def test_ddc_signed_datagrams_verify_with_the_peer(kind):
    sid = auth.new_session_id()
    body = encode_header(kind, 123456, 5) + b"hello"
    signed = auth.Signer(KeySet.of({200: KEY}), sid).sign(body)
    assert authpeer.verify({200: KEY}, sid, signed) == body
    with pytest.raises(ValueError, match="bad tag"):
        authpeer.verify({200: KEY}, os.urandom(8), signed)


def test_ddc_startup_payload_parses_with_the_peer():
    sid = auth.new_session_id()
    payload = auth.encode_startup(sid, 42, auth.descriptor("x", "records", 8972, (32, 8)))
    assert authpeer.parse_startup_payload(payload) == (
        sid,
        42,
        {"name": "x", "envelope": "records", "max_packet_size": 8972, "fec": [32, 8]},
    )
