"""Authentication key files (docs/security.md, docs/wire-protocol.md "Authentication").

Format: one key per line, ``ID:HEX`` where ID is a decimal key id 0..255 and HEX the key, at least
32 bytes (64 hex digits). Blank lines and ``#`` comments (whole line or after a key) are ignored.

* The ingress signs with the key of the **last** key line; the egress accepts every key.
* A key id appears at most once; a file without any key is an error.
* A key file readable or writable by group or others is accepted with a warning.

Every error names the file and line (``keys.txt:3: key id must be 0..255``) and never the key.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from ddc.errors import ConfigError

log = logging.getLogger(__name__)

MIN_KEY_BYTES = 32
MAX_KEY_ID = 255


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class KeySet:
    """The keys of one key file: id → key bytes, and the id the sender signs with."""

    keys: Mapping[int, bytes]
    signing_id: int

    @property
    def signing_key(self) -> bytes:
        return self.keys[self.signing_id]

    @classmethod
    def of(cls, keys: Mapping[int, bytes], signing_id: int | None = None) -> KeySet:
        """A key set built in code (tests, tools); the signing id defaults to the last one."""
        if not keys:
            raise KeyFileError("a key set needs at least one key")
        ids = list(keys)
        chosen = ids[-1] if signing_id is None else signing_id
        for key_id, key in keys.items():
            _check(key_id, key, "key set")
        if chosen not in keys:
            raise KeyFileError(f"signing key id {chosen} is not in the key set")
        return cls(dict(keys), chosen)


def _check(key_id: int, key: bytes, where: str) -> None:
    if not 0 <= key_id <= MAX_KEY_ID:
        raise KeyFileError(f"{where}: key id must be 0..{MAX_KEY_ID}, got {key_id}")
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(
            f"{where}: key {key_id} has {len(key)} bytes, at least {MIN_KEY_BYTES} are required"
        )


def parse_keys(text: str, source: str = "<keys>") -> KeySet:
    """The KeySet of a key file's text; KeyFileError naming `source` and the line."""
    keys: dict[int, bytes] = {}
    last: int | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source}:{number}"
        id_text, sep, hex_text = line.partition(":")
        if not sep:
            raise KeyFileError(f"{where}: expected ID:HEX")
        id_text, hex_text = id_text.strip(), hex_text.strip()
        if not id_text.isdigit():
            raise KeyFileError(f"{where}: key id must be a number 0..{MAX_KEY_ID}")
        key_id = int(id_text)
        try:
            key = bytes.fromhex(hex_text)
        except ValueError:
            raise KeyFileError(f"{where}: key is not hexadecimal (two digits per byte)") from None
        _check(key_id, key, where)
        if key_id in keys:
            raise KeyFileError(f"{where}: key id {key_id} appears twice")
        keys[key_id] = key
        last = key_id
    if last is None:
        raise KeyFileError(f"{source}: no key (expected lines ID:HEX)")
    return KeySet(keys, last)


def permission_warning(path: str | os.PathLike[str]) -> str | None:
    """A warning when the key file is readable or writable by group or others, else None."""
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (
            f"key file {os.fspath(path)} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it"
        )
    return None


def load_keys(path: str | os.PathLike[str]) -> tuple[KeySet, str | None]:
    """The KeySet of a key file and a permission warning (or None); KeyFileError otherwise."""
    name = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise KeyFileError(f"{name}: key file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{name}: cannot read key file: {exc}") from None
    return parse_keys(text, name), permission_warning(path)


def read_keys(path: str, config_key: str) -> KeySet:
    """A daemon's key file at start: ConfigError naming `config_key` when it cannot be used;
    a permission warning is logged."""
    try:
        keys, warning = load_keys(path)
    except KeyFileError as exc:
        raise ConfigError(config_key, str(exc)) from None
    if warning:
        log.warning("%s", warning)
    return keys


def reload_keys(
    path: str | os.PathLike[str], kept: str, logger: logging.Logger = log
) -> KeySet | None:
    """SIGHUP: the key file's new KeySet, or None when it cannot be used (logged as an error
    on `logger`, saying what is `kept`); a permission warning is logged."""
    try:
        keys, warning = load_keys(path)
    except KeyFileError as exc:
        logger.error("SIGHUP: key file not reloaded, %s: %s", kept, exc)
        return None
    if warning:
        logger.warning("%s", warning)
    return keys


def new_key_line(key_id: int = 1, size: int = MIN_KEY_BYTES) -> str:
    """A new ``ID:HEX`` key line with `size` random bytes from the OS's CSPRNG."""
    key = secrets.token_bytes(size)
    _check(key_id, key, "new key")
    return f"{key_id}:{key.hex()}"
