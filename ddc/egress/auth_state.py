"""What a restarted egress remembers of the authenticated session before it (docs/security.md
"A restarted egress").

The file `auth-session` in the egress's spool directory holds the current session's id,
start_time_ms and the repeat_ms of the newest StartUp repeat accepted. It is written (atomically,
fsync'd) before the egress acts on a new session, a resumed one or a fresh repeat, so after a
crash it is never older than what the egress delivered on: a replayed StartUp or repeat from
before the restart is not newer than it and is refused.

Without a spool directory, or before the first session, the floor is the egress's own start
time: only sessions and repeats the ingress sent after it (by the two hosts' clocks) count. A
spool directory without the file has never held a session (`fresh`): what arrived before the
first session may be delivered under it (ddc/protocol/auth_session.py rule 7).
"""

from __future__ import annotations

import json
import logging
import os

from ddc.protocol.auth import now_ms
from ddc.protocol.auth_session import ResumePoint, Session

log = logging.getLogger(__name__)

STATE_FILE = "auth-session"


def load_resume_point(directory: str) -> ResumePoint:
    """The persisted session, or the floor of "now" when there is none (or it is unreadable)."""
    boot = ResumePoint(None, now_ms(), now_ms())
    if not directory:
        return boot
    path = os.path.join(directory, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        return ResumePoint(
            bytes.fromhex(state["session_id"]), int(state["start_time_ms"]), int(state["repeat_ms"])
        )
    except FileNotFoundError:
        return ResumePoint(None, boot.start_time_ms, boot.repeat_ms, fresh=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("%s unreadable (%s): only sessions newer than this start are accepted", path, exc)
        return boot


def save_session(directory: str, session: Session) -> None:
    """Persists the session before the egress acts on it (no-op without a directory)."""
    if not directory:
        return
    state = {
        "session_id": session.session_id.hex(),
        "start_time_ms": session.start_time_ms,
        "repeat_ms": max(session.repeat_ms, session.start_time_ms),
    }
    path = os.path.join(directory, STATE_FILE)
    temporary = path + ".tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        log.error("cannot persist the authenticated session to %s: %s", path, exc)
