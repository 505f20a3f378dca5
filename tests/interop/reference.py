"""An emulation of the reference Rust DDC's limits, for the `peer = "reference"` tests.

The reference's receiving side, as its transport code behaves (docs/wire-protocol.md,
"Compatibility with the reference Rust DDC"):
* every fragment of a chunk but the last carries exactly FRAGMENT (65,498) bytes: it places
  fragment i at offset i × FRAGMENT, and a chunk cut finer makes it panic;
* it has SLOTS (20) fragment slots: a chunk of more fragments makes it panic;
* a Shutdown stops it for good: its process stays up, but it reads nothing more.
A panic ends the receiver (`panicked` says why), as it ends the reference's process. Its sending
side is the v1 Encoder with 65,507-byte packets that never sends a HeartBeat.

Built on the independent v1 peer (tests/interop/v1peer.py): no `ddc` import.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.interop.v1peer import DATA, DATA_FIRST, HEADER_LEN, MAX_DATAGRAM, SHUTDOWN, Decoder

FRAGMENT = MAX_DATAGRAM - HEADER_LEN  # 65,498
SLOTS = 20


@dataclass
class ReferenceReceiver(Decoder):
    """The v1 Decoder with the reference's limits in front of it."""

    stopped: bool = False  # a Shutdown arrived: nothing more is read
    panicked: str | None = None
    ignored: int = 0  # datagrams that arrived after it stopped or panicked

    def feed(self, datagram: bytes) -> None:
        if self.stopped or self.panicked is not None:
            self.ignored += 1
            return
        kind = datagram[0] if datagram else 0
        if kind in (DATA_FIRST, DATA) and len(datagram) >= HEADER_LEN:
            remaining = int.from_bytes(datagram[7:9], "little")
            payload = len(datagram) - HEADER_LEN
            if kind == DATA_FIRST and remaining + 1 > SLOTS:
                self.panicked = f"a chunk of {remaining + 1} fragments (it has {SLOTS} slots)"
                return
            if remaining > 0 and payload != FRAGMENT:
                self.panicked = f"a {payload}-byte fragment before the last (expects {FRAGMENT})"
                return
        super().feed(datagram)
        if kind == SHUTDOWN:
            self.stopped = True
