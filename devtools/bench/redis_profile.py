"""Redis's own profile for a bench trial: where its CPU went, per command (INFO commandstats).

py-spy cannot see inside Redis; commandstats can: calls and microseconds per command, the
commands a Lua script runs counted under their own names as well as under the script's
EVALSHA (whose time includes theirs)."""

from __future__ import annotations

from typing import Any

from dedup_service.embedded import EmbeddedRedis
from dedup_service.redis_client import RedisClient, connect

TOP = 12


def _client(server: EmbeddedRedis) -> RedisClient:
    return connect(server.url, password=server.password)


def reset(server: EmbeddedRedis) -> None:
    """Zero the counters (CONFIG RESETSTAT) before the trial to profile."""
    _client(server).config_resetstat()


def report(server: EmbeddedRedis, records: int) -> str:
    """The commands by time spent since reset(), with microseconds per record of the trial."""
    stats: dict[str, dict[str, Any]] = _client(server).info("commandstats")
    rows = sorted(stats.items(), key=lambda item: -item[1]["usec"])[:TOP]
    lines = [
        "redis: command, calls, usec per call, usec per record (EVALSHA includes its commands)"
    ]
    for name, stat in rows:
        per_record = stat["usec"] / max(records, 1)
        lines.append(
            f"    {name.removeprefix('cmdstat_'):<22} {stat['calls']:>10,} "
            f"{stat['usec_per_call']:>9.2f} {per_record:>8.2f}"
        )
    return "\n".join(lines)
