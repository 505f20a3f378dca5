"""The egress's authentication gate: every datagram is verified here before anything else
(before the sender check, FEC and reassembly), per ddc/protocol/auth_session.py's rules.

What the gate adds to the state machine:
* datagrams that arrive before the first session are held and checked against it when it
  begins (`release`), unless it was resumed from the persisted state (then refused, one line);
* refusals are counted by reason (`failures`, exported as ddc_egress_auth_failures_total) and
  logged at most once per reason per LOG_INTERVAL (one ERROR line naming the reason, the
  sender's address and the count; never a line per packet);
* a datagram of a superseded session (a second ingress holding the key) is named in a
  throttled WARNING with its address (`second_sender`, in /healthz);
* a session's StartUp descriptor that contradicts the egress config is logged once per
  contradiction and shown in /healthz (`mismatch`) until a session is accepted;
* the session is persisted (ddc/egress/auth_state.py) before the egress acts on a new session,
  a resumed one or a fresh repeat;
* `failing(accepted)` (the link watch): the refusal reason that dominated since the last call
  when nothing was accepted meanwhile: "authentication failing (bad_tag)";
* `reload()` (SIGHUP): the key file is read again; a file that cannot be used keeps the old keys.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from ddc.egress.auth_state import load_resume_point, save_session
from ddc.logs import ThrottledLog
from ddc.protocol import auth_session as rules
from ddc.protocol.auth import Buffer
from ddc.protocol.auth_keys import read_keys, reload_keys
from ddc.protocol.auth_session import AuthReceiver, Expectations
from ddc.units import format_hostport

log = logging.getLogger(__name__)

LOG_INTERVAL = 10.0
SESSION_EVENTS = (rules.NEW_SESSION, rules.RESUMED_SESSION, rules.REPEAT)
# the refusal reasons in the order they name a failing link's cause
CAUSES = (
    rules.BAD_TAG,
    rules.UNKNOWN_KEY,
    rules.MISSING,
    rules.REPLAY,
    rules.STALE_SESSION,
    "refused_session",
)


class AuthGate:
    def __init__(
        self, path: str, expect: Expectations, max_clock_skew: float, state_dir: str
    ) -> None:
        self.path = path
        self.state_dir = state_dir
        keys = read_keys(path, "egress.transport.auth_keys")
        self.receiver = AuthReceiver(
            keys,
            expect,
            max_clock_skew=max_clock_skew,
            resume=load_resume_point(state_dir),
        )
        self.failures = self.receiver.failures
        self.second_sender: str | None = None  # the last second sender's address
        self.mismatch: str | None = None  # the refused session's contradiction, for /healthz
        self._log = ThrottledLog(log, LOG_INTERVAL)
        self._second_log = ThrottledLog(log, LOG_INTERVAL, logging.WARNING)
        self._second_count = 0
        self._seen: tuple[int, Counter[str]] = (0, Counter())  # at the last failing() call
        log.info("authentication on: key ids %s from %s", sorted(keys.keys), path)

    def check(self, view: Buffer, size: int, address: tuple) -> str | None:
        """The verdict (ACCEPTED or a session event) or None: refused (counted and logged) or
        held until the first session begins (see `release`)."""
        verdict = self.receiver.check(view, size, address)
        if verdict is rules.ACCEPTED:
            return verdict
        if verdict is rules.HELD:
            return None
        if verdict in SESSION_EVENTS:
            self._session_event(verdict, address)
            return verdict
        if verdict == rules.REFUSED_SESSION:
            self._refused_session(address)
            return None
        receiver = self.receiver
        if receiver.second_sender != self._second_count:
            self._second_count = receiver.second_sender
            self.second_sender = format_hostport(address)
            self._second_log(
                "second",
                "second sender: datagrams from %s belong to an older session signed with this "
                "link's key (another ingress holding the key, or a replay): refused as "
                "stale_session (%d so far)",
                self.second_sender,
                receiver.second_sender,
            )
        self._log(
            verdict,
            "authentication: refused a datagram from %s: %s (%d refused for this reason)",
            format_hostport(address),
            verdict,
            self.failures[verdict],
        )
        return None

    def _session_event(self, verdict: str, address: tuple) -> None:
        session = self.receiver.session
        assert session is not None
        save_session(self.state_dir, session)
        if verdict == rules.REPEAT:
            return
        self.mismatch = None
        log.info(
            "authenticated session %s from %s %s (started %d ms, %s)",
            session.session_id.hex(),
            format_hostport(address),
            "resumed" if verdict == rules.RESUMED_SESSION else "started",
            session.start_time_ms,
            session.info.descriptor.get("name"),
        )

    def release(self) -> list[tuple[bytes, Any]]:
        """After the first session began: the datagrams held before it, to be checked again
        (rule 7 of ddc/protocol/auth_session.py), or none when they were refused."""
        held, refused = self.receiver.release()
        if refused:
            log.error(
                "authentication: refused %d datagrams that arrived before the session's StartUp "
                "repeat: the session was resumed from the persisted state, so they may be replays "
                "of what was delivered before the restart (stale_session)",
                refused,
            )
        elif held:
            log.info(
                "authentication: %d datagrams that arrived before the session began are "
                "checked against it",
                len(held),
            )
        return held

    def _refused_session(self, address: tuple) -> None:
        problem = self.receiver.mismatch
        if problem != self.mismatch:
            self.mismatch = problem
            log.error(
                "session from %s refused: its StartUp contradicts this egress's config: %s",
                format_hostport(address),
                problem,
            )

    def failing(self, accepted: int) -> str | None:
        """ "authentication failing (REASON)" when datagrams were refused and none accepted since
        the last call (`accepted`: the receiver's running count of accepted datagrams). REASON
        is the root cause among the refusals since then: a refused session's contradiction,
        else the first of CAUSES counted (no session makes the rest `stale_session`)."""
        refused = self.failures + Counter({"refused_session": self.receiver.sessions_refused})
        before, self._seen = self._seen, (accepted, refused)
        new = refused - before[1]
        if accepted != before[0] or not new:
            return None
        if self.mismatch is not None:
            return "authentication failing (refused_session)"
        reason = next(reason for reason in CAUSES if new[reason])
        return f"authentication failing ({reason})"

    def reload(self) -> None:
        keys = reload_keys(self.path, "the old keys stay", log)
        if keys is None:
            return
        self.receiver.reload(keys)
        log.warning("SIGHUP: key file %s reloaded: key ids %s", self.path, sorted(keys.keys))

    def health(self) -> dict[str, Any]:
        receiver = self.receiver
        session = receiver.session
        return {
            "auth": {
                "session": None if session is None else session.session_id.hex(),
                "key_ids": sorted(receiver.keys.keys),
                "failures": {reason: self.failures[reason] for reason in rules.REASONS},
                "second_sender": self.second_sender,
                "held": len(receiver.held),
            },
            "auth_mismatch": self.mismatch,
        }
