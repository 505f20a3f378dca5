"""The ingress's side of packet authentication (docs/security.md): its session and signing key.

* Each StartUp burst begins a new session: a random session id and start_time_ms (wall clock,
  strictly increasing within the process even if the clock steps back).
* `signer` signs every datagram with the **last** key of the key file (`[ingress.transport]
  auth_keys`); `reload` (SIGHUP) re-reads the file and signs with its last key from the next
  datagram on, in the same session. A file that cannot be used is logged and the old keys stay.
* `startup_payload(repeat_seq)`: the StartUp payload of the session; a repeat (sent with every
  HeartBeat, so that a restarted egress resumes within one heartbeat) carries `repeat_ms` (the
  clock now) and `seq` (the next data seq) in its descriptor.
"""

from __future__ import annotations

import logging
from typing import Any

from ddc.protocol.auth import Signer, descriptor, encode_startup, new_session_id, now_ms
from ddc.protocol.auth_keys import read_keys, reload_keys

log = logging.getLogger(__name__)

CONFIG_KEY = "ingress.transport.auth_keys"


class AuthSender:
    def __init__(self, path: str, name: str, envelope: str, max_packet_size: int, fec: Any) -> None:
        self.path = path
        self.keys = read_keys(path, CONFIG_KEY)
        self.descriptor = descriptor(name, envelope, max_packet_size, fec)
        self.session_id = new_session_id()
        self.start_time_ms = 0
        self._last_repeat_ms = 0
        self.signer = Signer(self.keys, self.session_id)

    @property
    def key_id(self) -> int:
        return self.signer.key_id

    def new_session(self) -> None:
        self.session_id = new_session_id()
        self.start_time_ms = max(now_ms(), self.start_time_ms + 1)
        self._last_repeat_ms = self.start_time_ms
        self.signer = Signer(self.keys, self.session_id)
        log.info(
            "authentication: session %s, signing with key %d",
            self.session_id.hex(),
            self.signer.key_id,
        )

    def startup_payload(self, repeat_seq: int | None = None) -> bytes:
        desc = self.descriptor
        if repeat_seq is not None:
            self._last_repeat_ms = max(now_ms(), self._last_repeat_ms + 1)
            desc = {**desc, "repeat_ms": self._last_repeat_ms, "seq": repeat_seq}
        return encode_startup(self.session_id, self.start_time_ms, desc)

    def reload(self) -> None:
        keys = reload_keys(self.path, f"still signing with key {self.key_id}", log)
        if keys is None:
            return
        self.keys = keys
        self.signer = Signer(keys, self.session_id)
        log.warning("SIGHUP: key file %s reloaded, signing with key %d", self.path, self.key_id)
