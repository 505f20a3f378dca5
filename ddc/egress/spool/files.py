"""A spool directory's small files: the lock (one process per spool) and the ack file."""

from __future__ import annotations

import fcntl
import logging
import os

from ddc.egress.spool.format import ACK_NAME, decode_ack, encode_ack
from ddc.egress.spool.segments import SpoolError

log = logging.getLogger(__name__)


def lock(directory: str) -> int:
    """Create the directory if needed and lock it; the lock's fd (held until closed)."""
    try:
        os.makedirs(directory, mode=0o750, exist_ok=True)
        fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        raise SpoolError(f"cannot use spool directory {directory}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise SpoolError(f"spool directory {directory} is in use by another process") from exc
    return fd


def read_ack(directory: str) -> int:
    """The acknowledged sequence number saved in `directory` (0: none; an unreadable file is
    logged and taken as 0, so everything spooled is delivered again: at-least-once)."""
    path = os.path.join(directory, ACK_NAME)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return 0
    seq = decode_ack(data)
    if seq is None:
        log.error("spool %s: ack file unreadable; every spooled entry is delivered again", path)
        return 0
    return seq


def save_ack(directory: str, seq: int) -> None:
    """Replace the ack file atomically: write ack.tmp, fsync, rename, fsync the directory."""
    path = os.path.join(directory, ACK_NAME)
    with open(path + ".tmp", "wb") as handle:
        handle.write(encode_ack(seq))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path + ".tmp", path)
    fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
