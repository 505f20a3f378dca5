"""The pending claims this process holds, so that a copy waiting on one wakes when it settles.

Redundant links deliver the two copies of a record at about the same time, to the same service:
link a's batch claims ids pending and forwards them while link b's batch, carrying the same ids,
finds them pending under a's token and has to wait for a's commit (→ duplicate) or release
(→ it claims them). Polling Redis every POLL_INTERVAL for that made the wait, not the work, the
redundant chain's bound: with both links in step nearly every id of b's batches waited (bench
redundant: 83,525 waits for 101,500 records), each wait at least one interval, each holding one
of the egress sink's max_in_flight POSTs.

Rules (all of it runs in the service's one gevent hub: no switch between a copy's attach and a
commit's seal, nor inside any of these calls but the waits):
* hold_unheld(ids, fingerprints) before claiming returns the batch's Holding, which every id no
  other local batch holds maps to: a copy arriving while the claim is on its way finds it.
  keep(holding, ids, firsts) once the claim answered: the ids it won map to it (the latest
  holder winning), the others are let go.
* settle(ids, holding) after the commit or release (also when forwarding raised): the ids held by
  that holding are forgotten, then its event is set; waiters wake at once.
* wait_held(ids, fingerprints, bit) before the first claim waits for the local batches holding
  any of the ids (at most `cap` seconds): claiming them first would only answer pending and cost
  a Redis pass per id. The forwarder asks again after each wait, within one `cap` in all
  (`until`): the other link's next batches may hold more of the ids by then. A copy whose holder
  has not begun to commit (not `sealed`) and whose fingerprint does not contradict the holder's
  *attaches*: its link's bit rides on the holder's commit, which marks it on the claim. Once that
  commit answered committed for the id, the copy is a duplicate without a claim of its own (both
  copies of a record meeting here cost Redis a claim and a commit, not two claims and a commit). Anything else (the holder released, failed,
  lost its lease, or did not settle within `cap`) and the copy claims as before.
* wait(ids, poll) waits for the events holding the ids, all of them, until `cap` seconds; when
  some id is held by no batch of this process (another instance holds it, or a claim left by a
  crash), for at most `poll` seconds: only Redis can say when that one settles. An id found
  unheld is looked up again after GRACE: the holder's claim answer may not have been read yet
  (both links' claims answer together; which greenlet runs first is the hub's choice).
Redis stays the authority: a copy is a duplicate without claiming only when the commit that
marked its link answered committed; every other waiter claims again after waking, so waking
early (or late) costs a Redis call (or time), never correctness.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence

Settled = threading.Event  # gevent's under the service's monkey-patching
GRACE = 0.002  # seconds for a holder whose claim just answered to hold its ids


class Holding:
    """One batch's pending claims in this process, and the copies that attached to them."""

    __slots__ = ("settled", "fingerprints", "extra", "sealed", "committed")

    def __init__(self, fingerprints: dict[str, str]) -> None:
        self.settled = Settled()
        self.fingerprints = fingerprints  # id → the holder's fingerprint
        self.extra: dict[str, int] = {}  # id → bit mask of the links whose copies attached
        self.sealed = False  # the commit is under way: too late to attach
        self.committed: set[str] = set()  # ids the commit left committed, their extra marked

    def attach(self, ident: str, fingerprint: str, bit: int) -> bool:
        """Rides on the commit unless it began or the fingerprints conflict (Redis judges)."""
        own = self.fingerprints.get(ident, "")
        if self.sealed or (own and fingerprint and own != fingerprint):
            return False
        self.extra[ident] = self.extra.get(ident, 0) | (1 << bit)
        return True

    def extra_links(self, ids: Iterable[str]) -> list[int]:
        """Per id, the mask of the attached links' bits, and from now on no more attach."""
        self.sealed = True
        extra = self.extra
        return [extra.get(ident, 0) for ident in ids]


class HeldClaims:
    def __init__(self, cap: float = 1.0) -> None:
        self.cap = cap  # seconds a waiter trusts local events before asking Redis again
        self.held: dict[str, Holding] = {}

    def hold_unheld(self, ids: Sequence[str], fingerprints: Sequence[str]) -> Holding:
        """A Holding for a batch about to claim, holding the ids no other local batch holds (a
        copy arriving meanwhile attaches instead of claiming too); keep() once it answered."""
        holding = Holding(dict(zip(ids, fingerprints, strict=True)))
        held = self.held
        for ident in ids:
            if ident not in held:
                held[ident] = holding
        return holding

    def keep(self, holding: Holding, ids: Iterable[str], firsts: set[str]) -> None:
        """After the claim: `holding` holds the ids it won (`firsts`) and lets go of the rest."""
        held = self.held
        for ident in ids:
            if ident in firsts:
                held[ident] = holding
            elif held.get(ident) is holding:
                del held[ident]

    def settle(self, ids: Iterable[str], holding: Holding) -> None:
        held = self.held
        for ident in ids:
            if held.get(ident) is holding:
                del held[ident]
        holding.settled.set()

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

    def wait_held(
        self, ids: Sequence[str], fingerprints: Sequence[str], bit: int, until: float | None = None
    ) -> tuple[list[int], dict[int, Holding]]:
        """Before claiming: until the local batches holding any of `ids` settled (at most `cap`
        seconds, or until the monotonic time `until`). The positions of the ids they held, and
        position → Holding of those attached."""
        holdings: dict[int, Holding] = {}
        attached: dict[int, Holding] = {}
        found: list[int] = []
        held = self.held
        for position, ident in enumerate(ids):
            holding = held.get(ident)
            if holding is not None:
                found.append(position)
                holdings[id(holding)] = holding
                if holding.attach(ident, fingerprints[position], bit):
                    attached[position] = holding
        deadline = time.monotonic() + self.cap if until is None else until
        for holding in holdings.values():
            left = deadline - time.monotonic()
            if left <= 0 or not holding.settled.wait(left):
                break
        return found, attached

    def _events(self, ids: list[str]) -> tuple[list[Settled], bool]:
        """The distinct events holding `ids`, and whether some id is held by none."""
        events: dict[int, Settled] = {}
        remote = False
        held = self.held
        for ident in ids:
            holding = held.get(ident)
            if holding is None:
                remote = True
            else:
                events[id(holding)] = holding.settled
        return list(events.values()), remote
