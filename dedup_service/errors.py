"""Exceptions of the dedup service; every one derives from DedupError."""

from __future__ import annotations

from collections.abc import Iterable

from ddc.errors import DDCError


class DedupError(DDCError):
    """Root of all dedup service errors."""


class RedisUnavailable(DedupError):
    """Redis cannot be reached (down, restarting, loading its data): fail closed."""


class SinkFailed(DedupError):
    """The sink did not acknowledge every record; `delivered` holds the indices it did."""

    def __init__(self, message: str, delivered: Iterable[int] = ()) -> None:
        super().__init__(message)
        self.delivered = frozenset(delivered)


class StillPending(DedupError):
    """Another holder's claim on some ids did not resolve within pending_timeout."""


class InvalidRecord(DedupError):
    """A record whose id cannot be derived with the configured id_from."""


class TooManyLinks(DedupError):
    """More distinct link names than the claim bitmask can hold."""


class RequestRejected(DedupError):
    """Bad input to the HTTP API: answered with `status` and the error body."""

    def __init__(self, status: int, code: str, message: str, errors: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
