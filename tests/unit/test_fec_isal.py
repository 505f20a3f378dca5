"""The sender's parity by ISA-L is zfec's parity, byte for byte; without it the sender says so.

Skipped where libisal.so.2 is not installed, unless DDC_REQUIRE_ISAL is set (.ci/run sets it
and installs Debian's libisal2, so CI always runs these)."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddc.protocol import fec, isal
from ddc.protocol.fec_decoder import FecDecoder
from ddc.protocol.wire import HEADER_SIZE, MessageType, encode_header

requires_isal = pytest.mark.skipif(
    not isal.available() and not os.environ.get("DDC_REQUIRE_ISAL"),
    reason="libisal.so.2 not installed (Debian: apt install libisal2)",
)
MAX_DATA = fec.MAX_DATA_DATAGRAM


def data_datagram(seq: int, size: int) -> bytes:
    payload = random.Random(seq * 31 + size).randbytes(size - HEADER_SIZE)
    return encode_header(MessageType.DATA, seq, len(payload), 0) + payload


@requires_isal
def test_the_library_loaded_and_passed_its_known_answer_test():
    assert isal.available(), isal.status()
    assert isal.status() == "ISA-L (libisal.so.2)"


@requires_isal
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k=st.integers(1, 64),
    m=st.integers(1, 16),
    sizes=st.lists(st.integers(HEADER_SIZE, 3000), min_size=64, max_size=64),
    big=st.sampled_from([None, 1472, 8972, MAX_DATA]),
    first=st.integers(0, 2**32 - 1),
    stride=st.integers(1, 4),
)
def test_isal_parity_is_zfec_parity(k, m, sizes, big, first, stride):
    sizes = sizes[:k]
    if big is not None:
        sizes[-1] = big
    datagrams = [data_datagram(i, size) for i, size in enumerate(sizes)]
    slot = first % stride
    assert fec._encode_group_isal(datagrams, first, m, stride, slot) == fec._encode_group_zfec(
        datagrams, first, m, stride, slot
    )


@requires_isal
@pytest.mark.parametrize("k, m", [(1, 1), (1, 255), (255, 1), (128, 128)])
def test_isal_parity_is_zfec_parity_at_the_extremes_of_k_and_m(k, m):
    datagrams = [data_datagram(i, HEADER_SIZE + 1 + i % 70) for i in range(k)]
    assert fec._encode_group_isal(datagrams, 7, m, 1, 0) == fec._encode_group_zfec(
        datagrams, 7, m, 1, 0
    )


@requires_isal
def test_isal_parity_restores_through_the_zfec_decoder():
    datagrams = [data_datagram(seq, 1472) for seq in range(32)]
    parity = fec.encode_group(datagrams, 0, 8)
    decoder = FecDecoder()
    lost = {3, 9, 10, 17, 20, 21, 30, 31}
    for seq, datagram in enumerate(datagrams):
        if seq not in lost:
            assert decoder.data(seq, datagram, 0.0) == []
    restored = []
    for datagram in parity:
        restored += decoder.parity(datagram, 0.0)
    assert restored == [(seq, datagrams[seq]) for seq in sorted(lost)]


@requires_isal
def test_a_failed_known_answer_test_falls_back_to_zfec_and_says_why(monkeypatch):
    def wrong(self, blocks, size, out, offset, step):
        for j in range(self.m):
            out[offset + j * step] ^= 1

    monkeypatch.setattr(isal, "_disabled", None)
    monkeypatch.setattr(isal.Encoder, "encode_into", wrong)
    fec._check_isal()
    assert not isal.available()
    assert isal.status() == (
        "zfec (ISA-L libisal.so.2 refused: its parity differs from zfec's in the known-answer test)"
    )
    datagrams = [data_datagram(seq, 100) for seq in range(4)]
    assert fec.encode_group(datagrams, 0, 2) == fec._encode_group_zfec(datagrams, 0, 2, 1, 0)


def test_without_the_library_the_status_names_the_package(monkeypatch):
    monkeypatch.setattr(isal, "_library", None)
    monkeypatch.setattr(isal, "_origin", "libisal.so.2 not usable (cannot open shared object)")
    assert not isal.available()
    assert isal.status().startswith("zfec (libisal.so.2 not usable")
    assert "libisal2" in isal.status()
    with pytest.raises(RuntimeError):
        isal.Encoder(2, 1, b"\x01\x01")
