"""Claim → forward → commit, or release: how a batch of records gets to the sink exactly once.

A record's claim stays pending (held by this request's token) until the sink acknowledged it; then
it is committed for `window`. If the sink fails the claim is released at once, so the other link's
copy goes through instead. A copy that meets another holder's pending claim waits until that claim
is committed (→ duplicate) or released (→ it claims it); it wakes when the holder's batch settles
if this process holds it (held.py), else after POLL_INTERVAL. Redis down before forwarding: nothing is
forwarded (RedisUnavailable → 503). Redis down after forwarding: the commit is retried for
commit_retry_timeout, so a short outage does not turn into a duplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ddc.protocol.record import Record
from dedup_service import lua
from dedup_service.errors import RedisUnavailable, SinkFailed, StillPending
from dedup_service.held import HeldClaims, Holding
from dedup_service.keys import IDEMPOTENCY_HEADER
from dedup_service.metrics import DedupMetrics
from dedup_service.sinks.base import Sink
from dedup_service.stats import StatsBook
from dedup_service.store import Store

log = logging.getLogger(__name__)

RESULT_NAMES = {lua.FIRST: "first", lua.DUPLICATE: "duplicate", lua.CONFLICT: "conflict"}
POLL_INTERVAL = 0.05
RELEASE_RETRY_TIMEOUT = 5.0  # an unreleased claim only delays the other copy until it expires
T = TypeVar("T")
LOG_SAMPLE = 5


@dataclass(slots=True)
class Item:
    ident: str
    fingerprint: str
    record: Record | None = None


def with_idempotency_key(record: Record, ident: str) -> Record:
    """The record with its dedup id as the `ddc-dedup-id` header (replacing one it carried)."""
    headers = [(name, value) for name, value in record.headers if name != IDEMPOTENCY_HEADER]
    headers.append((IDEMPOTENCY_HEADER, ident.encode()))
    # by position: dataclasses.replace() was 3 % of the service's CPU (bench dedup_records)
    return Record(
        record.value,
        record.key,
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        headers,
    )


def dedupe_batch(items: Sequence[Item]) -> tuple[list[int], dict[int, tuple[int, str]]]:
    """Indices of first occurrences, and for repeats within the batch: index → (first index, result)."""
    seen: dict[str, int] = {}
    unique: list[int] = []
    repeats: dict[int, tuple[int, str]] = {}
    for index, item in enumerate(items):
        earlier = seen.get(item.ident)
        if earlier is None:
            seen[item.ident] = index
            unique.append(index)
        else:
            other = items[earlier].fingerprint
            conflict = bool(other and item.fingerprint and other != item.fingerprint)
            repeats[index] = (earlier, "conflict" if conflict else "duplicate")
    return unique, repeats


class Forwarder:
    def __init__(
        self,
        store: Store,
        sink: Sink,
        metrics: DedupMetrics,
        stats: StatsBook,
        *,
        pending_timeout: float,
        commit_retry_timeout: float,
    ) -> None:
        self.store = store
        self.sink = sink
        self.metrics = metrics
        self.stats = stats
        self.pending_timeout = pending_timeout
        self.commit_retry_timeout = commit_retry_timeout
        self.held = HeldClaims()  # wakes a copy waiting on this process's pending claims

    def _tally(self, link: str, results: Sequence[str]) -> None:
        for name in ("first", "duplicate", "conflict"):
            amount = sum(1 for result in results if result == name)
            if amount:
                self.metrics.claims.labels(link, name).inc(amount)
                self.stats.add(link, name, amount)

    def _log_conflicts(self, link: str, items: Sequence[Item], results: Sequence[str]) -> None:
        ids = [
            item.ident for item, result in zip(items, results, strict=True) if result == "conflict"
        ]
        if ids:
            log.warning(
                "link %s: %d record(s) reuse an id with different content, not forwarded (ids %s)",
                link,
                len(ids),
                ", ".join(repr(i) for i in ids[:LOG_SAMPLE]),
            )

    def claim(self, link: str, items: Sequence[Item]) -> list[str]:
        """One-phase claims (/v1/claims): first|duplicate|conflict per item, committed at once."""
        unique, repeats = dedupe_batch(items)
        codes = self._claim(link, items, unique, self.store.new_token(), pending=False)
        results = [""] * len(items)
        for index, code in zip(unique, codes, strict=True):
            results[index] = RESULT_NAMES.get(code, "duplicate")
        for index, (_earlier, result) in repeats.items():
            results[index] = result
        self._tally(link, results)
        self._log_conflicts(link, items, results)
        return results

    def _claim(
        self, link: str, items: Sequence[Item], indices: list[int], token: str, *, pending: bool
    ) -> list[int]:
        ids = [items[i].ident for i in indices]
        fingerprints = [items[i].fingerprint for i in indices]
        return self.store.claim(link, ids, fingerprints, token, pending=pending)

    def forward(self, link: str, items: Sequence[Item]) -> list[str]:
        """Two-phase: first (forwarded and committed) | duplicate | conflict per item."""
        unique, repeats = dedupe_batch(items)
        results = [""] * len(items)
        for index, (_earlier, result) in repeats.items():
            results[index] = result
        token = self.store.new_token()
        deadline = time.monotonic() + self.pending_timeout + 1.0
        todo, waited = self._ride_local(link, items, unique, results)
        try:
            while todo:
                # held before claiming: a copy arriving while the claim is on its way attaches
                ids = [items[i].ident for i in todo]
                fingerprints = [items[i].fingerprint for i in todo]
                holding = self.held.hold_unheld(ids, fingerprints)
                try:
                    codes = self.store.claim(link, ids, fingerprints, token, pending=True)
                    firsts, waiting = self._sort_claims(link, items, todo, codes, token, results)
                    self.held.keep(holding, ids, {items[i].ident for i in firsts})
                    if firsts:
                        try:
                            self._deliver(link, items, firsts, token, holding)
                        except SinkFailed as exc:
                            for index in exc.delivered:
                                results[index] = "first"
                            raise
                        for index in firsts:
                            results[index] = "first"
                finally:  # committed, released or not ours: the copies waiting on them wake
                    self.held.settle(ids, holding)
                if waiting and not waited:
                    self.metrics.pending_waits.inc(len(waiting))
                    waited = True
                if waiting and time.monotonic() > deadline:
                    raise StillPending(
                        f"{len(waiting)} id(s) still pending under another holder after "
                        f"{self.pending_timeout:g}s; retry"
                    )
                if waiting:
                    self.held.wait((items[i].ident for i in waiting), POLL_INTERVAL)
                todo = waiting
        finally:
            done = [result for result in results if result]
            self._tally(link, done)
            self._log_conflicts(
                link, [item for item, r in zip(items, results, strict=True) if r], done
            )
        return results

    def _ride_local(
        self, link: str, items: Sequence[Item], todo: list[int], results: list[str]
    ) -> tuple[list[int], bool]:
        """Before claiming: the other link's copies of these records are being forwarded right
        here, so wait for them instead of claiming (Redis would answer pending); where their
        commit marked this copy's link, the copy is a duplicate already (`results`). Looked at
        again after each wait, for at most HeldClaims.cap seconds in all: meanwhile the other
        link's next batches may have come to hold more of the ids. The indices still to claim,
        and whether any waited."""
        bit = self.store.link_bit(link)
        until = time.monotonic() + self.held.cap
        waited: set[int] = set()
        while todo:
            found, attached = self.held.wait_held(
                [items[i].ident for i in todo],
                [items[i].fingerprint for i in todo],
                bit,
                until,
            )
            if not found:
                break
            before = len(waited)
            waited.update(todo[position] for position in found)
            self.metrics.pending_waits.inc(len(waited) - before)
            marked = set()
            for position, holding in attached.items():
                index = todo[position]
                if items[index].ident in holding.committed:
                    results[index] = "duplicate"
                    marked.add(index)
            if not marked:
                break
            todo = [index for index in todo if index not in marked]
            if time.monotonic() >= until:
                break
        return todo, bool(waited)

    def _sort_claims(
        self,
        link: str,
        items: Sequence[Item],
        todo: list[int],
        codes: list[int],
        token: str,
        results: list[str],
    ) -> tuple[list[int], list[int]]:
        """The pending claims' answers `codes` for `todo` (under `token`): fills `results` of the
        ids they settle (duplicate, conflict, or already at the sink after a takeover) and
        returns the indices to forward and those pending under another holder."""
        firsts, waiting = [], []
        again = [i for i, code in zip(todo, codes, strict=True) if code == lua.REFORWARD]
        at_sink = self._found_at_sink(link, items, again, token) if again else set()
        for index in at_sink:
            results[index] = "first"
        if len(at_sink) < len(again):
            self._log_reforward(items, [i for i in again if i not in at_sink])
        for index, code in zip(todo, codes, strict=True):
            if index in at_sink:
                continue  # already at the sink: committed by _found_at_sink
            if code in (lua.FIRST, lua.REFORWARD):
                firsts.append(index)
            elif code == lua.PENDING:
                waiting.append(index)
            else:
                results[index] = RESULT_NAMES[code]
        return firsts, waiting

    def _found_at_sink(
        self, link: str, items: Sequence[Item], indices: list[int], token: str
    ) -> set[int]:
        """Of the records an earlier holder claimed and never settled, those the sink already
        has (by idempotency key, looked for since that claim): committed under `token` now."""
        marks = self.store.forward_marks([items[i].ident for i in indices])
        dated = [(i, mark) for i, mark in zip(indices, marks, strict=True) if mark is not None]
        if not dated:
            return set()
        try:
            found = self.sink.find_forwarded(
                [items[i].ident for i, _ in dated], min(mark for _, mark in dated)
            )
        except Exception as exc:  # the records are forwarded again, as without the lookup
            log.warning(
                "could not look for %d record(s) of an unfinished earlier forward at the sink "
                "(%r): forwarding them again",
                len(dated),
                exc,
            )
            return set()
        present = [i for i, _ in dated if items[i].ident in (found or ())]
        if present:
            self._commit(link, items, present, token)
            self.metrics.reforward_found.inc(len(present))
            log.info(
                "%d record(s) of an unfinished earlier forward were already at the sink (found by "
                "their idempotency key): committed, not forwarded again",
                len(present),
            )
        return set(present)

    def _log_reforward(self, items: Sequence[Item], indices: list[int]) -> None:
        self.metrics.reforwarded.inc(len(indices))
        log.warning(
            "%d record(s) forwarded again: an earlier claim was neither committed nor released "
            "(a crash, or a lease lost to a slow sink); their idempotency keys (ids %s) let the "
            "target drop the repeat",
            len(indices),
            ", ".join(repr(items[i].ident) for i in indices[:LOG_SAMPLE]),
        )

    def _deliver(
        self, link: str, items: Sequence[Item], indices: list[int], token: str, holding: Holding
    ) -> None:
        records: list[Record] = []
        for index in indices:
            record = items[index].record
            assert record is not None, "forward() takes items with their records"
            records.append(with_idempotency_key(record, items[index].ident))
        try:
            self.sink.send(records)
            delivered = set(range(len(indices)))
            self.sink.ok = True
            failure: Exception | None = None
        except SinkFailed as exc:
            delivered, failure = set(exc.delivered), exc
        except Exception as exc:  # a sink bug must not lose the records: release and report
            log.exception("sink %s raised unexpectedly", self.sink.config["type"])
            delivered, failure = set(), exc
        done = [indices[k] for k in sorted(delivered)]
        failed = [indices[k] for k in range(len(indices)) if k not in delivered]
        if done:
            self.metrics.records_forwarded.labels(link).inc(len(done))
            self._commit(link, items, done, token, holding)
        if failure is not None:
            self.sink.ok = False
            self.metrics.sink_errors.inc()
            released = self._release([items[i].ident for i in failed], token)
            log.error(
                "sink failed (%s): %d record(s) not delivered, %d claim(s) released for retry or "
                "the other link's copy",
                failure,
                len(failed),
                released,
            )
            raise SinkFailed(f"sink failed: {failure}", delivered=done) from failure

    def _retrying(self, what: str, operation: Callable[[], T], timeout: float) -> T:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                return operation()
            except RedisUnavailable:
                self.metrics.redis_errors.inc()
                if time.monotonic() + delay > deadline:
                    raise
                self.metrics.commit_retries.inc()
                log.warning("%s: Redis unavailable, retrying in %.2fs", what, delay)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _commit(
        self,
        link: str,
        items: Sequence[Item],
        indices: list[int],
        token: str,
        holding: Holding | None = None,
    ) -> None:
        """Commits the claims; with the batch's `holding`, also marks the links of the copies
        that attached to it and tells them which ids ended committed."""
        ids = [items[i].ident for i in indices]
        fps = [items[i].fingerprint for i in indices]
        extra = holding.extra_links(ids) if holding is not None else None
        try:
            codes = self._retrying(
                "commit",
                lambda: self.store.commit(link, ids, fps, token, extra),
                self.commit_retry_timeout,
            )
        except RedisUnavailable:
            log.error(
                "%d forwarded record(s) could not be committed within %.0fs: their claims expire "
                "after pending_timeout and another copy may then be delivered again",
                len(ids),
                self.commit_retry_timeout,
            )
            raise
        lost = [ident for ident, code in zip(ids, codes, strict=True) if code == lua.HELD_BY_OTHER]
        if holding is not None:
            gone = set(lost)
            holding.committed.update(ident for ident in ids if ident not in gone)
        if lost:
            self.metrics.lease_lost.inc(len(lost))
            log.error(
                "%d record(s) were forwarded after their pending claim expired and was taken by "
                "another copy: possible duplicates (ids %s); raise pending_timeout",
                len(lost),
                ", ".join(repr(i) for i in lost[:LOG_SAMPLE]),
            )

    def _release(self, ids: list[str], token: str) -> int:
        if not ids:
            return 0
        try:
            released = self._retrying(
                "release", lambda: self.store.release(ids, token), RELEASE_RETRY_TIMEOUT
            )
        except RedisUnavailable:
            log.error("could not release %d claim(s): they expire after pending_timeout", len(ids))
            return 0
        self.metrics.releases.inc(released)
        return released
