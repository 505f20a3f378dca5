"""Errors of the topology checker."""

from ddc.errors import DDCError


class TopologyInputError(DDCError):
    """An input file that cannot be read or understood (exit code 2)."""
