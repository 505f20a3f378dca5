"""The ingress's FEC parity: when blocks close, who encodes them, when their parity is sent.

Rules (the wire order is docs/wire-protocol.md's, fec.py's docstring):
* Every data datagram goes to `data` once sent (or dropped for good) with its seq.
* A block still open `max_age` seconds after its first data packet is closed by the next data
  packet (a slow `rate`: the egress waits 100 ms at most for a repair); `flush` closes the open
  block (the linger, and before the Shutdown burst); `due_at` is when the linger ends.
* A closed block is encoded by the encoder thread (`EncodeWorker`: zfec releases the GIL, so the
  encoding runs on the other core while the next block's data goes out) and its parity is sent
  as soon as it is ready, checked after every data packet. At most one block is with the worker:
  the next block to close first waits for it and sends its parity, so a block's parity always
  precedes the next block's parity and follows at most the next block's data packets (the order
  the egress relies on: fec.py). `flush` encodes inline (nothing to overlap with) after sending
  the parity still with the worker; after it nothing is pending. When no block is open and a
  parity is pending, `due_at` is due at once so an idle sender collects it without waiting.
* `reset` (StartUp): the open block of the old sequence and the parity with the worker are
  dropped.

(An earlier worker-thread version let the parity go whenever it was ready, unbounded; under CPU
contention it came late enough for the egress's 100 ms repair wait to give up on gaps: the
bound of one block, and `due_at`, are the fix.)
"""

from __future__ import annotations

from collections.abc import Callable

from gevent import monkey

from ddc.protocol.fec import BlockJob, BlockLike, FecEncoder, encode_block

# real OS threads and locks even under gevent's monkey-patching (a greenlet would not run on the
# other core); the sending greenlet waits on the lock only when the worker is not done yet
_start_thread = monkey.get_original("_thread", "start_new_thread")
_allocate_lock = monkey.get_original("_thread", "allocate_lock")


THREADED = True  # the default: encode in a worker thread (tests of exact wire order turn it off)
# how long the sending greenlet waits for the worker's parity before it encodes the block itself
WORKER_WAIT = 0.002


class EncodeWorker:
    """One OS thread encoding one block at a time; `submit`, then `ready`/`result`."""

    def __init__(self) -> None:
        self._job: BlockJob | None = None
        self._result: list[bytes] | BaseException | None = None
        self._wake = _allocate_lock()
        self._wake.acquire()
        self._done = _allocate_lock()
        self._done.acquire()
        _start_thread(self._run, ())

    def submit(self, job: BlockJob) -> None:
        self._job = job
        self._wake.release()

    def ready(self) -> bool:
        return self._result is not None

    def result(self, timeout: float = -1) -> list[bytes] | None:
        """The parity of the submitted block, waiting for it up to `timeout` seconds (-1: for
        as long as it takes); None if it is not done by then."""
        if not self._done.acquire(True, timeout):
            return None
        result, self._result = self._result, None
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        return result

    def _run(self) -> None:
        while True:
            self._wake.acquire()
            job, self._job = self._job, None
            try:
                assert job is not None
                self._result = encode_block(job)
            except BaseException as exc:  # handed to the sending greenlet
                self._result = exc
            self._done.release()


class ParitySender:
    def __init__(
        self,
        encoder: FecEncoder,
        send_parity: Callable[[list[bytes]], None],
        max_age: float,
        threaded: bool | None = None,
    ) -> None:
        self.encoder = encoder
        self.send_parity = send_parity
        self.max_age = max_age
        self._worker = EncodeWorker() if (THREADED if threaded is None else threaded) else None
        self._pending: BlockJob | None = None  # the block with the worker, parity not sent
        self._pending_since = 0.0  # when it closed
        self._stale = False  # the worker is busy with a block already sent inline
        self.inline_blocks = 0  # blocks encoded inline because the worker was not done in time

    def due_at(self) -> float | None:
        """When the open block's linger ends (monotonic seconds), or at once when no block is
        open but a parity is with the worker; None when there is nothing to flush."""
        due = self.encoder.due_at
        if due is None and self._pending is not None:
            return self._pending_since
        return due

    def data(self, seq: int, datagram: BlockLike, now: float) -> None:
        encoder = self.encoder
        jobs = encoder.add_jobs(seq, datagram, now)
        due = encoder.due_at
        if due is not None and now - (due - encoder.linger) >= self.max_age:
            job = encoder.close()
            if job is not None:
                jobs.append(job)
        for job in jobs:
            self._encode(job, now)
        if self._pending is not None and self._worker is not None and self._worker.ready():
            self._collect()

    def _encode(self, job: BlockJob, now: float) -> None:
        """The previous block's parity goes first; this block to the worker if it is free."""
        worker = self._worker
        if self._pending is not None:
            self._collect()
        if worker is not None and self._stale and worker.ready():
            worker.result()  # a block already sent inline: dropped
            self._stale = False
        if worker is None or self._stale:
            self.inline_blocks += worker is not None
            self.send_parity(encode_block(job))
            return
        worker.submit(job)
        self._pending, self._pending_since = job, now

    def _collect(self) -> None:
        """Sends the pending block's parity: the worker's, or encoded here if it is not done
        (a starved worker never delays parity by more than one block)."""
        worker, job = self._worker, self._pending
        assert worker is not None and job is not None
        self._pending = None
        parity = worker.result(WORKER_WAIT)
        if parity is not None:
            self.send_parity(parity)
        else:
            self._stale = True
            self.inline_blocks += 1
            self.send_parity(encode_block(job))

    def flush(self) -> None:
        if self._pending is not None:
            self._collect()
        job = self.encoder.close()
        if job is not None:
            self.send_parity(encode_block(job))

    def reset(self) -> None:
        if self._pending is not None:
            self._pending = None
            self._stale = True  # the old sequence's parity: never sent
        self.encoder.reset()
