"""Bearer tokens of the control routes (docs/security.md "Tokens").

Rules:
* A guarded route (ingress /admin/*, every dedup POST) requires ``Authorization: Bearer <token>``
  with the token read from the daemon's token file (`admin_token_file`, `api_token_file`).
* Without a configured token the route answers 403 and names the config key that enables it:
  a control route is never open by default.
* A missing or wrong token answers 401. Tokens are compared in constant time
  (hmac.compare_digest over bytes).
* Every refusal is counted by reason (`no_token_configured`, `missing`, `bad_token`) and logged,
  at most one line per reason per LOG_INTERVAL (ThrottledLog), without the presented token.
* A form POST from a browser cannot set an Authorization header, so a cross-site request is
  refused like any other request without the token.

Token file: the token is the file's content with surrounding whitespace removed; at least
MIN_TOKEN_LENGTH characters, printable ASCII without spaces. A file readable by group/others is
accepted with a warning.
"""

from __future__ import annotations

import hmac
import logging
import os
import stat
from collections.abc import Callable

from ddc.errors import ConfigError
from ddc.logs import ThrottledLog

MIN_TOKEN_LENGTH = 16
LOG_INTERVAL = 10.0
NO_TOKEN = "no_token_configured"
MISSING = "missing"
BAD_TOKEN = "bad_token"
REASONS = (NO_TOKEN, MISSING, BAD_TOKEN)

log = logging.getLogger(__name__)


def read_token(path: str, key: str) -> str:
    """The token in the file at `path`; ConfigError naming `key` when it cannot be used."""
    try:
        with open(path, encoding="ascii") as handle:
            token = handle.read().strip()
    except FileNotFoundError:
        raise ConfigError(key, f"token file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(key, f"cannot read token file {path}: {exc}") from None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            key, f"the token in {path} must have at least {MIN_TOKEN_LENGTH} characters"
        )
    if not all(33 <= ord(char) <= 126 for char in token):
        raise ConfigError(key, f"the token in {path} must be printable ASCII without spaces")
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "token file %s is accessible by group or others (mode %04o); chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
    return token


def optional_token(path: str | None, key: str) -> str | None:
    return None if path is None else read_token(path, key)


def bearer_header(token: str | None) -> dict[str, str]:
    """The request header a client sends (nothing without a token)."""
    return {} if token is None else {"Authorization": f"Bearer {token}"}


class TokenGuard:
    """Decides whether a request to a guarded route may proceed.

    `check(authorization)` returns None when allowed, else (status, message). `on_refusal(reason)`
    is called for each refusal (the daemon's counter).
    """

    def __init__(
        self,
        token: str | None,
        config_key: str,
        on_refusal: Callable[[str], None] = lambda reason: None,
        what: str = "this route",
    ) -> None:
        self._token = None if token is None else token.encode("ascii")
        self.config_key = config_key
        self.on_refusal = on_refusal
        self.what = what
        self._log = ThrottledLog(log, LOG_INTERVAL, logging.WARNING)

    @property
    def configured(self) -> bool:
        return self._token is not None

    def check(self, authorization: str | None, peer: str = "?") -> tuple[int, str] | None:
        if self._token is None:
            return self._refuse(
                NO_TOKEN, 403, f"{self.what} is disabled: set {self.config_key} to enable it", peer
            )
        if not authorization or not authorization.startswith("Bearer "):
            return self._refuse(
                MISSING, 401, f"{self.what} requires Authorization: Bearer <token>", peer
            )
        presented = authorization[len("Bearer ") :].strip().encode("utf-8", "replace")
        if not hmac.compare_digest(presented, self._token):
            return self._refuse(BAD_TOKEN, 401, "invalid token", peer)
        return None

    def _refuse(self, reason: str, status: int, message: str, peer: str) -> tuple[int, str]:
        self.on_refusal(reason)
        self._log(reason, "control request refused (%s) from %s: %s", reason, peer, message)
        return status, message
