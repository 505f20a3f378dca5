"""The ingress's FEC parity: when blocks close and when their parity is sent.

Rules (the wire order is docs/wire-protocol.md's, fec.py's docstring):
* Every data datagram goes to `data` once sent (or dropped for good) with its seq. A block it
  completes is encoded at once and its parity sent before `data` returns: a block's parity
  follows its last data packet directly, before any data of the next block.
* A block still open `max_age` seconds after its first data packet is closed by the next data
  packet (a slow `rate`: the egress waits 100 ms at most for a repair); `flush` closes the open
  block (the linger, and before the Shutdown burst); `due_at` is when the linger ends.
* `reset` (StartUp): the open block of the old sequence is dropped.

Encoding runs in the sending greenlet. (A worker thread encoding one block while the next one's
data went out was tried and removed: under CPU contention the worker was rarely done in time, so
the sender waited for it and then encoded the block again itself; `scripts/bench link --scenario
fec` delivered less with it, at the same CPU per MB: docs/operations.md.)
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
        for job in encoder.add_jobs(seq, datagram, now):
            self.send_parity(encode_block(job))
        due = encoder.due_at
        if due is not None and now - (due - encoder.linger) >= self.max_age:
            self.flush()

    def flush(self) -> None:
        job = self.encoder.close()
        if job is not None:
            self.send_parity(encode_block(job))

    def reset(self) -> None:
        self.encoder.reset()
