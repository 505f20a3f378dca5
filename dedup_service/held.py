"""The pending claims this process holds, so that a copy waiting on one wakes when it settles.

Redundant links deliver the two copies of a record at about the same time, to the same service:
link a's batch claims ids pending and forwards them while link b's batch, carrying the same ids,
finds them pending under a's token and has to wait for a's commit (→ duplicate) or release
(→ it claims them). Polling Redis every POLL_INTERVAL for that made the wait, not the work, the
redundant chain's bound: with both links in step nearly every id of b's batches waited (bench
redundant: 83,525 waits for 101,500 records), each wait at least one interval, each holding one
of the egress sink's max_in_flight POSTs.

Rules:
* hold(ids) before forwarding returns the batch's Settled event; every id maps to it, the latest
  holder winning (a pending claim of this very token is re-held by the same batch).
* settle(ids, event) after the commit or release (also when forwarding raised): the ids held by
  that event are forgotten, then the event is set; waiters wake at once.
* wait_held(ids) before the first claim waits for the local batches holding any of the ids:
  claiming them first would only answer pending and cost a Redis pass per id (about a quarter
  of Redis's work per record when both copies meet: claim a, claim b, commit a, claim b again).
* wait(ids, poll) waits for the events holding the ids, all of them, until `cap` seconds; when
  some id is held by no batch of this process (another instance holds it, or a claim left by a
  crash), for at most `poll` seconds: only Redis can say when that one settles. An id found
  unheld is looked up again after GRACE: the holder's claim answer may not have been read yet
  (both links' claims answer together; which greenlet runs first is the hub's choice).
The claim in Redis stays the authority: a waiter always claims again after waking, so waking
early (or late) costs a Redis call (or time), never correctness.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

Settled = threading.Event  # gevent's under the service's monkey-patching
GRACE = 0.002  # seconds for a holder whose claim just answered to hold its ids


class HeldClaims:
    def __init__(self, cap: float = 1.0) -> None:
        self.cap = cap  # seconds a waiter trusts local events before asking Redis again
        self.held: dict[str, Settled] = {}

    def hold(self, ids: Iterable[str]) -> Settled:
        event = Settled()
        held = self.held
        for ident in ids:
            held[ident] = event
        return event

    def settle(self, ids: Iterable[str], event: Settled) -> None:
        held = self.held
        for ident in ids:
            if held.get(ident) is event:
                del held[ident]
        event.set()

    def wait(self, ids: Iterable[str], poll: float) -> None:
        """Until the local batches holding `ids` settled (at most `cap` seconds), or `poll`
        seconds when some id is held elsewhere."""
        start = time.monotonic()
        ids = list(ids)
        events, remote = self._events(ids)
        if remote:  # the holder's claim may have answered and not yet been held: look again
            time.sleep(GRACE)
            events, remote = self._events(ids)
        deadline = start + (poll if remote else self.cap)
        for event in events:
            left = deadline - time.monotonic()
            if left <= 0 or not event.wait(left):
                return
        if remote:
            time.sleep(max(0.0, deadline - time.monotonic()))

    def wait_held(self, ids: Iterable[str]) -> int:
        """Before claiming: until the local batches holding any of `ids` settled (at most `cap`
        seconds); how many of the ids they held. Their claim would only answer pending."""
        events: dict[int, Settled] = {}
        count = 0
        held = self.held
        for ident in ids:
            event = held.get(ident)
            if event is not None:
                count += 1
                events[id(event)] = event
        deadline = time.monotonic() + self.cap
        for event in events.values():
            left = deadline - time.monotonic()
            if left <= 0 or not event.wait(left):
                break
        return count

    def _events(self, ids: list[str]) -> tuple[list[Settled], bool]:
        """The distinct events holding `ids`, and whether some id is held by none."""
        events: dict[int, Settled] = {}
        remote = False
        held = self.held
        for ident in ids:
            event = held.get(ident)
            if event is None:
                remote = True
            else:
                events[id(event)] = event
        return list(events.values()), remote
