"""Exceptions raised by the ddc package; every one derives from DDCError."""


class DDCError(Exception):
    """Root of all ddc errors."""


class ConfigError(DDCError):
    """Invalid configuration; the message names the key and the problem."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class EnvelopeError(DDCError):
    """A chunk whose envelope (records batch) does not decode."""


class SinkError(DDCError):
    """A sink could not deliver."""
