"""The ingress's FEC parity: when blocks close, and their parity sent right after them.

Rules (the wire order is docs/wire-protocol.md's, fec.py's docstring):
* Every data datagram goes to `data` once sent (or dropped for good) with its seq; the parity
  of each block it closes goes to `send_parity` at once, before any later data packet.
* A block still open `max_age` seconds after its first data packet is closed by the next data
  packet (a slow `rate`: the egress waits 100 ms at most for a repair); `flush` closes the open
  block (the linger, and before the Shutdown burst); `due_at` is when the linger ends.
* `reset` (StartUp): the open block of the old sequence is dropped.

zfec encodes inline, on the sending greenlet. (Encoding in a worker thread while the next
block's data goes out cut the sending thread's CPU by about 40 % in a micro-benchmark, but under
CPU contention the parity then came late enough for the egress's 100 ms repair wait to give up
on gaps: measured on the real-loss test, see the FEC notes in docs/operations.md.)
"""

from __future__ import annotations

from collections.abc import Callable

from ddc.protocol.fec import BlockLike, FecEncoder, encode_block


class ParitySender:
    def __init__(
        self, encoder: FecEncoder, send_parity: Callable[[list[bytes]], None], max_age: float
    ) -> None:
        self.encoder = encoder
        self.send_parity = send_parity
        self.max_age = max_age

    def due_at(self) -> float | None:
        """When the open block's linger ends (monotonic seconds); None when no block is open."""
        return self.encoder.due_at

    def data(self, seq: int, datagram: BlockLike, now: float) -> None:
        encoder = self.encoder
        jobs = encoder.add_jobs(seq, datagram, now)
        due = encoder.due_at
        if due is not None and now - (due - encoder.linger) >= self.max_age:
            job = encoder.close()
            if job is not None:
                jobs.append(job)
        for job in jobs:
            self.send_parity(encode_block(job))

    def flush(self) -> None:
        job = self.encoder.close()
        if job is not None:
            self.send_parity(encode_block(job))

    def reset(self) -> None:
        self.encoder.reset()
