"""Forward error correction: the parity packet format and the sender's group encoder.

Erasure code: Reed-Solomon over GF(2^8) as implemented by zfec (systematic, MDS: any K of the
K+M packets of a group restore all K data packets, always). Chosen over RaptorQ because RaptorQ
is not MDS (K received symbols decode only with high probability) and, measured for K=32, M=8,
was not faster on the sender, where the encoder runs for every group (see docs/wire-protocol.md).

Parity datagram (message type 6; consumes NO sequence number; all integers little-endian)::

    offset size  field
    0      1     message type = 6 (Parity)
    1      4     seq: the sequence number of the group's first data packet
    5      2     payload length = 6 + B
    7      2     remaining: 0 (reserved; receivers ignore it)
    9      1     scheme: 1 = zfec Reed-Solomon GF(2^8) over zero-padded data datagrams
    10     1     K: data packets in this group, 1..255 (fewer than configured if closed early)
    11     1     M: parity packets of this group, 1..255; K + M <= 256
    12     1     index: this parity packet's index, 0..M-1 (zfec share number K + index)
    13     1     stride: N, the interleave: sequence distance between the group's data packets
    14     1     slot: the group's place in its interleave block, 0..N-1 (block's first seq =
                 seq - slot)
    15     B     parity block: zfec share K + index over the group's K data blocks

* The group's data packets are the ones with seq = (first + i * stride) mod 2^32, i = 0..K-1.
* Data block i is the whole data datagram (v1 header + payload, exactly as sent) zero-padded to
  B, the length of the group's longest data datagram. The v1 header inside each block carries
  the payload length, so a restored block is cut back to 9 + length bytes: the original
  datagram, byte-identical (its type, seq and remaining are checked against the group).
* Everything the receiver needs is in every parity packet: the egress needs no FEC config.
* Size: a parity datagram is PARITY_OVERHEAD (15) bytes longer than the group's longest data
  datagram. With FEC on, the ingress keeps each data datagram <= max_packet_size - 15
  (see `data_datagram_max`), so parity datagrams never exceed max_packet_size (<= 65507).

Interleaving N: a "block" of up to N*K consecutive data packets goes round-robin into N groups
(group `slot` j takes the block's packets j, j+N, j+2N, ...; stride N). With N = 1 a block is
one group.

Order on the wire: a block's parity packets follow its last data packet (or the linger that
closes it early) and precede the next block's parity and the data of the block after next (the
ingress sends them right after the block's last data packet, before any of the next block's
data: ddc/ingress/transport.py; receivers accept them up to the bound above); within
a block: index 0 of every group, then index 1, ..., each round in slot order starting after the
slot of the block's last data packet,
so the whole block (data and parity) is one round-robin over its N groups. Any run of N*M
consecutive packets then holds at most M of each group: a burst that long is repaired in full
(for a block closed early with fewer than N data packets, each group still repairs M losses
of its own). The receiver relies on this order to decide early that a gap can no longer be
repaired: once a parity packet of a later block arrives, nothing of an earlier one will.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

import zfec  # no type information: pyproject.toml tells mypy to skip it

from ddc.protocol import isal
from ddc.protocol.wire import HEADER, HEADER_SIZE, MAX_DATAGRAM, SEQ_MODULO, MessageType

PARITY = 6  # the message type of a parity packet
SCHEME_ZFEC = 1
PARITY_HEADER = struct.Struct("<BBBBBB")  # scheme, K, M, index, stride, slot
# the whole header of a parity datagram: v1's (type, seq, length, remaining), then PARITY_HEADER
PARITY_DATAGRAM_HEADER = struct.Struct(HEADER.format + PARITY_HEADER.format[1:])
PARITY_OVERHEAD = PARITY_DATAGRAM_HEADER.size  # 15
MAX_SHARES = 256  # zfec: K + M <= 256
MAX_STRIDE = 255
DATA_TYPES = (MessageType.DATA_FIRST, MessageType.DATA)

BlockLike = bytes | bytearray | memoryview
MAX_DATA_DATAGRAM = MAX_DATAGRAM - PARITY_OVERHEAD  # the largest data datagram FEC can cover
NO_PARITY: list[bytes] = []  # returned (never changed) by an `add` that closed no block


def data_datagram_max(max_packet_size: int) -> int:
    """The largest data datagram (header + payload) the ingress may send with FEC on."""
    return min(max_packet_size, MAX_DATAGRAM) - PARITY_OVERHEAD


def check_params(k: int, m: int, interleave: int = 1) -> None:
    """ValueError naming the bad parameter; K = data packets, M = parity packets per group."""
    if not 1 <= k <= MAX_SHARES - 1:
        raise ValueError(f"fec_data must be 1..{MAX_SHARES - 1}, got {k}")
    if not 0 <= m <= MAX_SHARES - k:
        raise ValueError(f"fec_parity must be 0..{MAX_SHARES - k} (fec_data + fec_parity <= 256)")
    if not 1 <= interleave <= MAX_STRIDE:
        raise ValueError(f"fec_interleave must be 1..{MAX_STRIDE}, got {interleave}")


class ParityInfo:
    """The decoded header of a parity datagram."""

    __slots__ = ("first", "k", "m", "index", "stride", "slot", "block")

    def __init__(
        self, first: int, k: int, m: int, index: int, stride: int, slot: int, block: memoryview
    ) -> None:
        self.first = first
        self.k = k
        self.m = m
        self.index = index
        self.stride = stride
        self.slot = slot
        self.block = block

    @property
    def block_first(self) -> int:
        """The first seq of the interleave block this group belongs to."""
        return (self.first - self.slot) % SEQ_MODULO

    def member(self, i: int) -> int:
        """The seq of the group's i-th data packet."""
        return (self.first + i * self.stride) % SEQ_MODULO

    def members(self) -> list[int]:
        """The seqs of the group's K data packets, in order."""
        return [self.member(i) for i in range(self.k)]


def parse_parity(datagram: BlockLike) -> ParityInfo | str:
    """The parity header, or the reason (a short metric label) why the datagram is malformed."""
    size = len(datagram)
    if size < PARITY_OVERHEAD + HEADER_SIZE:
        return "parity_short"
    kind, first, length, _remaining, scheme, k, m, index, stride, slot = (
        PARITY_DATAGRAM_HEADER.unpack_from(datagram)
    )
    if kind != PARITY:
        return "parity_type"
    if length != size - HEADER_SIZE:
        return "length_mismatch"
    if scheme != SCHEME_ZFEC:
        return "parity_scheme"
    if k < 1 or m < 1 or k + m > MAX_SHARES or index >= m or stride < 1 or slot >= stride:
        return "parity_header"
    return ParityInfo(first, k, m, index, stride, slot, memoryview(datagram)[PARITY_OVERHEAD:])


# one zfec coder per (K, M), kept: at most one per valid pair (K + M <= MAX_SHARES)


@functools.cache
def _encoder(k: int, m: int) -> zfec.Encoder:
    return zfec.Encoder(k, k + m)


@functools.cache
def _decoder(k: int, m: int) -> zfec.Decoder:
    return zfec.Decoder(k, k + m)


def parity_matrix(k: int, m: int) -> bytes:
    """zfec's M x K parity coefficients (row-major), read off zfec itself: the code is linear
    byte by byte, so parity share j of unit blocks (block i = 1 at byte i) holds row j."""
    units = tuple(bytes(i) + b"\x01" + bytes(k - 1 - i) for i in range(k))
    return b"".join(_encoder(k, m).encode(units, tuple(range(k, k + m))))


@functools.cache
def _isal_encoder(k: int, m: int) -> isal.Encoder:
    return isal.Encoder(k, m, parity_matrix(k, m))


def pad(datagram: BlockLike, size: int) -> bytes:
    short = size - len(datagram)
    return bytes(datagram) + bytes(short) if short else bytes(datagram)


def encode_group(
    datagrams: Sequence[BlockLike], first: int, m: int, stride: int = 1, slot: int = 0
) -> list[bytes]:
    """The M parity datagrams (index order) of a group of data datagrams (K = len(datagrams))."""
    if isal.available():
        return _encode_group_isal(datagrams, first, m, stride, slot)
    return _encode_group_zfec(datagrams, first, m, stride, slot)


def _encode_group_zfec(
    datagrams: Sequence[BlockLike], first: int, m: int, stride: int, slot: int
) -> list[bytes]:
    k = len(datagrams)
    size = max(len(d) for d in datagrams)
    blocks = tuple(pad(d, size) for d in datagrams)
    shares = _encoder(k, m).encode(blocks, tuple(range(k, k + m)))
    return [
        b"".join((_parity_header(first, size, k, m, index, stride, slot), share))
        for index, share in enumerate(shares)
    ]


def _parity_header(
    first: int, size: int, k: int, m: int, index: int, stride: int, slot: int
) -> bytes:
    """The header of a parity datagram whose parity block is `size` bytes."""
    length = PARITY_HEADER.size + size
    first %= SEQ_MODULO
    return PARITY_DATAGRAM_HEADER.pack(
        PARITY, first, length, 0, SCHEME_ZFEC, k, m, index, stride, slot
    )


def _encode_group_isal(
    datagrams: Sequence[BlockLike], first: int, m: int, stride: int, slot: int
) -> list[bytes]:
    """As `_encode_group_zfec`, byte for byte; ISA-L writes each parity block straight into its
    datagram after the header."""
    k = len(datagrams)
    size = max(len(d) for d in datagrams)
    blocks = b"".join([d if len(d) == size else pad(d, size) for d in datagrams])
    length = PARITY_OVERHEAD + size
    out = bytearray(m * length)
    for index in range(m):
        out[index * length : index * length + PARITY_OVERHEAD] = _parity_header(
            first, size, k, m, index, stride, slot
        )
    _isal_encoder(k, m).encode_into(blocks, size, out, PARITY_OVERHEAD, length)
    view = memoryview(out)
    return [bytes(view[start : start + length]) for start in range(0, len(out), length)]


def _check_isal() -> None:
    """Known-answer test: ISA-L must give zfec's parity (mixed sizes, K and M not powers of 2)."""
    if not isal.available():
        return
    datagrams = [bytes((i * 37 + j * 11) % 256 for j in range(40 + 13 * i)) for i in range(7)]
    try:
        same = _encode_group_isal(datagrams, 5, 3, 1, 0) == _encode_group_zfec(
            datagrams, 5, 3, 1, 0
        )
    except (OSError, ValueError) as exc:
        isal.disable(f"known-answer test raised {exc!r}")
        return
    if not same:
        isal.disable("its parity differs from zfec's in the known-answer test")


_check_isal()


def decode_group(
    k: int, m: int, blocks: Sequence[BlockLike], share_numbers: Sequence[int]
) -> list[bytes]:
    """The K data blocks (padded) from any K blocks with their share numbers (data i, parity K+j)."""
    return _decoder(k, m).decode(tuple(blocks), tuple(share_numbers))


class BlockJob:
    """A closed interleave block: its groups (data datagrams, first seq, slot) in wire order."""

    __slots__ = ("groups", "m", "stride")

    def __init__(self, groups: list[tuple[list[BlockLike], int, int]], m: int, stride: int) -> None:
        self.groups = groups
        self.m = m
        self.stride = stride


def encode_block(job: BlockJob) -> list[bytes]:
    """The parity datagrams of a closed block in wire order (index 0 of every group, then 1...)."""
    per_group = [
        encode_group(datagrams, first, job.m, job.stride, slot)
        for datagrams, first, slot in job.groups
    ]
    if len(per_group) == 1:
        return per_group[0]
    return [parity[index] for index in range(job.m) for parity in per_group]


def unpad(block: bytes, seq: int) -> bytes | None:
    """The original datagram inside a restored block; None if the block is not a data packet
    with this seq and zero padding (then the group mixed packets that do not belong together)."""
    kind, block_seq, length, _remaining = HEADER.unpack_from(block)
    end = HEADER_SIZE + length
    if kind not in DATA_TYPES or block_seq != seq or end > len(block):
        return None
    if block.count(0, end) != len(block) - end:
        return None
    return block[:end]


class FecEncoder:
    """Groups data datagrams and returns the parity datagrams to send after them.

    Rules: consecutive data packets (one seq each) go round-robin into the `interleave` groups
    of the open block; when every group holds K data packets the block is encoded and its
    parity returned by the `add` that completed it, in the wire order of the module docstring.
    `flush()` closes the open block early (a group of K' < K data packets is sent as K' + M).
    A seq that does not follow the last one (a new sequence) flushes the open block first.
    A block still open `max_age` seconds after its first data packet is closed by the `add` of
    the next one (a slow `rate`: the egress waits 100 ms at most for a repair).
    With M = 0 the encoder does nothing. `due_at` is when the open block has waited `linger`
    seconds: the transport calls `flush()` then, so a quiet link holds nothing back.

    Integration (ingress transport): with FEC on, data payloads are at most
    `data_datagram_max(max_packet_size) - 9` bytes; every data datagram, once its seq is taken,
    goes to `add` (whether or not its send succeeded: the egress may then restore it) and the
    returned parity is sent right after it, paced like data. A linger flush must not overtake
    data: run `add`+send and `flush`+send under one lock (or in the one sending greenlet), so a
    block's parity always precedes the next block's parity and any later data. Before the
    Shutdown burst send `flush()`'s parity; at StartUp call `reset()`.
    """

    def __init__(
        self,
        k: int,
        m: int,
        interleave: int = 1,
        linger: float = 0.005,
        max_age: float = float("inf"),
    ) -> None:
        check_params(k, m, interleave)
        self.k = k
        self.m = m
        self.interleave = interleave
        self.linger = linger
        self.max_age = max_age
        self.groups_sent = 0
        self.parity_sent = 0
        self._slots: list[list[BlockLike]] = [[] for _ in range(interleave)]
        self._full = k * interleave  # data packets in a full block
        self._block_first = 0  # seq of the open block's first data packet
        self._position = 0  # data packets in the open block
        self._next_seq: int | None = None
        self._opened_at = 0.0

    @property
    def open_packets(self) -> int:
        return self._position

    @property
    def due_at(self) -> float | None:
        """When `flush()` must run (monotonic seconds), or None when no block is open."""
        return self._opened_at + self.linger if self._position else None

    def add(self, seq: int, datagram: BlockLike, now: float = 0.0) -> list[bytes]:
        """Takes one data datagram (as sent, with its seq); returns parity datagrams to send
        (an empty list, not to be changed, when no block closed: the common case)."""
        if not self.m:
            return NO_PARITY
        if len(datagram) > MAX_DATA_DATAGRAM:
            raise ValueError(
                f"data datagram of {len(datagram)} bytes: with FEC at most {MAX_DATA_DATAGRAM}"
            )
        position = self._position
        parity = NO_PARITY
        if position and seq != self._next_seq:
            parity = encode_block(self._close())
            position = 0
        if not position:
            self._block_first = seq
            self._opened_at = now
        self._slots[position % self.interleave].append(datagram)
        self._position = position = position + 1
        self._next_seq = (seq + 1) % SEQ_MODULO
        if position == self._full or now - self._opened_at >= self.max_age:
            parity = parity + encode_block(self._close())
        return parity

    def flush(self) -> list[bytes]:
        """Closes the open block now; its parity datagrams in wire order."""
        return encode_block(self._close()) if self._position else []

    def _close(self) -> BlockJob:
        n = self.interleave
        last_slot = (self._position - 1) % n
        groups: list[tuple[list[BlockLike], int, int]] = []
        for step in range(1, n + 1):  # slot order starting after the last data packet's slot
            slot_index = (last_slot + step) % n
            slot = self._slots[slot_index]
            if slot:
                groups.append((slot, self._block_first + slot_index, slot_index))
                self._slots[slot_index] = []
        self._position = 0
        self.groups_sent += len(groups)
        self.parity_sent += self.m * len(groups)
        return BlockJob(groups, self.m, n)

    def reset(self) -> None:
        """A new sequence (StartUp): the open block is dropped, the egress resets as well."""
        self._slots = [[] for _ in range(self.interleave)]
        self._position = 0
        self._next_seq = None
