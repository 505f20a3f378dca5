"""The claims in Redis: atomic first-wins per id, two-phase, with fingerprints and link masks.

Keys (all under `key_prefix`, hash-tagged by shard so that every script touches one slot):
  {prefix}:{S}:i:{id}   the claim (lua.py describes the value), TTL window
  {prefix}:{S}:d        the seconds with ids claimed first, scored by each second's end
  {prefix}:{S}:d:{sec}  the ids first claimed in that second, until divergence_window has passed
                        (standalone: shard 0's lists hold whole claim keys of every shard)
  {prefix}:links        link name → bit index;   {prefix}:stats   per-link counters
S = crc32(id) mod 64. A batch's claim (or commit) is one script call per CALL_IDS ids on a
standalone server; on Redis Cluster one call per shard, each routed by its slot. Needs
Redis >= 7.0 or Valkey (SET NX GET).

Memory per id (measured on Valkey 9.1, tests/integration/dedup/test_memory.py, 100,000 ids of
36 characters): `MEMORY USAGE` of one committed claim is 104 bytes; INFO used_memory grows by
135 bytes per id once the divergence window has passed, 183 bytes per id while the id is still
in a divergence list (divergence_window, 60 s by default). Roughly 100 bytes plus the
id's length: 10 million ids remembered for the window need about 1.3 GiB.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from itertools import count
from typing import Any, TypeVar, cast

import redis.exceptions as rexc
from redis.cluster import RedisCluster

from dedup_service import lua
from dedup_service.config import MAX_LINKS
from dedup_service.errors import RedisUnavailable, TooManyLinks
from dedup_service.redis_client import RedisClient
from dedup_service.store_wire import (
    SHARDS,
    Claim,
    claim_since,
    encode,
    parse_claim,
    rows,
    scatter,
    shard_of,
)

log = logging.getLogger(__name__)

# MAX_LINKS (dedup_service.config): Lua's bit library works on 32-bit integers
POP_LIMIT = 1000  # ids one POP_DUE call pops at most
# ids per script call at most on a standalone server: one call per usual batch,
# while a huge one (max_batch allows 1,000,000) does not hold Redis for seconds in one script
# (past lua-time-limit other clients get BUSY) nor wait for one reply past redis_timeout
CALL_IDS = 2000
HEALTH_FRESH = 1.0  # seconds a Redis answer to any call stands for reachability (reachable())
UNAVAILABLE = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    rexc.BusyLoadingError,
    rexc.ClusterDownError,
    rexc.TryAgainError,
    rexc.MasterDownError,
    rexc.ReadOnlyError,
)
T = TypeVar("T")


class Store:
    """Claims, commits, releases and lookups; every Redis outage surfaces as RedisUnavailable."""

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str,
        window: float,
        pending_timeout: float,
        track_divergence: bool = True,
    ) -> None:
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self.prefix = prefix
        self.window_ms = max(1, int(window * 1000))
        self.pending_ms = max(1, int(pending_timeout * 1000))
        self.track = "1" if track_divergence else "0"
        self.links_key = f"{prefix}:links"
        self.stats_key = f"{prefix}:stats"
        self._key_heads = [f"{prefix}:{{{shard}}}:i:" for shard in range(SHARDS)]
        self._div_keys = [f"{prefix}:{{{shard}}}:d" for shard in range(SHARDS)]
        self._link_bits: dict[str, int] = {}
        self._link_names: dict[int, str] = {}
        self._shas: dict[str, str] = {}
        self._tokens = count(1)
        self._instance = os.urandom(4).hex()
        self.on_availability: Callable[[bool], None] | None = None
        self._available: bool | None = None
        self._answered_at = -HEALTH_FRESH  # monotonic time of Redis's last answer

    # --- plumbing --------------------------------------------------------------------------

    def key(self, ident: str) -> str:
        return self._key_heads[shard_of(ident)] + ident

    def new_token(self) -> str:
        return f"{self._instance}{next(self._tokens):x}"

    def _mark(self, available: bool) -> None:
        if available != self._available:
            if available:
                log.info("Redis reachable")
            elif self._available is not None:
                log.error("Redis unreachable: failing closed (503) until it is back")
            self._available = available
            if self.on_availability:
                self.on_availability(available)

    def _call(self, operation: Callable[[], T]) -> T:
        try:
            result = operation()
        except UNAVAILABLE as exc:
            self._mark(False)
            raise RedisUnavailable(f"Redis unavailable: {exc}") from exc
        self._answered_at = time.monotonic()
        if self._available is not True:
            self._mark(True)
        return result

    def _sha(self, name: str) -> str:
        sha = self._shas.get(name)
        if sha is None:
            sha = self._shas[name] = self.client.script_load(getattr(lua, name))
        return sha

    def _with_script(self, name: str, run: Callable[[str], T]) -> T:
        """run(sha of script `name`); once more after NOSCRIPT (a restarted Redis forgot it)."""
        try:
            return run(self._sha(name))
        except rexc.NoScriptError:
            self._shas.pop(name, None)
            return run(self._sha(name))

    def _scripts(
        self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        """Runs one script once per (keys, args); reloads it after a Redis restart (NOSCRIPT).

        Standalone Redis: all calls in one pipeline, holding calls of this script only, so that
        replaying it after NOSCRIPT replays nothing that already ran. Redis Cluster (whose
        redis-py pipelines refuse EVALSHA): one call after the other, each routed by KEYS[1].
        """
        if self.cluster:

            def one_by_one() -> list[Any]:
                return [
                    self._with_script(name, partial(self._evalsha, keys, args))
                    for keys, args in calls
                ]

            return self._call(one_by_one)

        def pipelined(sha: str) -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.evalsha(sha, len(keys), *keys, *args)
            return pipe.execute()

        return self._call(lambda: self._with_script(name, pipelined))

    def _evalsha(self, keys: Sequence[str], args: Sequence[Any], sha: str) -> Any:
        return self.client.evalsha(sha, len(keys), *keys, *args)

    def _by_shard(self, ids: Sequence[str]) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for index, ident in enumerate(ids):
            groups.setdefault(shard_of(ident), []).append(index)
        return groups

    # --- links -----------------------------------------------------------------------------

    def link_bit(self, link: str) -> int:
        """The link's bit index, registered on first use (shared by every instance)."""
        bit = self._link_bits.get(link)
        if bit is None:
            bit = self._scripts("REGISTER_LINK", [([self.links_key], [link, MAX_LINKS])])[0]
            if bit < 0:
                raise TooManyLinks(f"at most {MAX_LINKS} distinct links")
            self._link_bits[link] = bit
            self._link_names[bit] = link
        return bit

    def every_link(self) -> int:
        """The mask of the links registered (that carried a record, or merge links), as this
        process last read them: a commit whose mask lacks one lists the id for the sweep. With
        fewer than two, -1 (every id is listed): the second link may just not have posted yet,
        and the sweep judges against the links registered by then."""
        mask = 0
        for bit in self._link_names:
            mask |= 1 << bit
        return mask if mask & (mask - 1) else -1

    def links(self, refresh: bool = False) -> dict[int, str]:
        """bit index → link name of every registered link."""
        if refresh or not self._link_names:
            for name, bit in self._hash(self.links_key).items():
                self._link_names[bit] = name
                self._link_bits[name] = bit
        return dict(self._link_names)

    # --- claims ----------------------------------------------------------------------------

    def claim(
        self,
        link: str,
        ids: Sequence[str],
        fingerprints: Sequence[str],
        token: str,
        *,
        pending: bool,
        now_ms: int | None = None,
    ) -> list[int]:
        """lua.FIRST/DUPLICATE/CONFLICT/PENDING/REFORWARD per id (ids must be distinct).

        pending=True: a two-phase claim held by `token` until commit() or release(), or until
        pending_timeout passes. pending=False: committed at once (the /v1/claims API).
        """
        bit = self.link_bit(link)
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        ttl, state = (self.pending_ms, "P") if pending else (self.window_ms, "C")
        args = [now, ttl, state, token, bit, self.track, self.window_ms, self.every_link()]
        return self._per_id("CLAIM", ids, [fingerprints], args)

    def commit(
        self,
        link: str,
        ids: Sequence[str],
        fingerprints: Sequence[str],
        token: str,
        extra_links: Sequence[int] | None = None,
        *,
        now_ms: int | None = None,
    ) -> list[int]:
        """lua.COMMITTED/ALREADY_COMMITTED/HELD_BY_OTHER per id; ids remembered for the window.

        extra_links: per id, a mask of link bits (link_bit()) also marked on a claim the commit
        leaves committed (COMMITTED or ALREADY_COMMITTED): the links whose copies waited on it.
        The ids it commits whose mask then lacks a served link are listed for the divergence
        sweep under the second of `now_ms`.
        """
        extras = extra_links if extra_links is not None else [0] * len(ids)
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        args = [self.window_ms, token, self.link_bit(link), now, self.track, self.every_link()]
        return self._per_id("COMMIT", ids, [fingerprints, extras], args)

    def release(self, ids: Sequence[str], token: str) -> int:
        """Deletes the pending claims `token` holds on ids; how many it released."""
        _groups, counts = self._per_shard(
            "RELEASE", ids, [token], lambda indices: encode([ids[i] for i in indices])
        )
        return sum(counts)

    def _per_shard(
        self,
        name: str,
        ids: Sequence[str],
        args: list[Any],
        payload: Callable[[list[int]], bytes],
    ) -> tuple[dict[int, list[int]], list[Any]]:
        """Script `name` once per shard of ids, ARGV = args + the shard's key head + payload of
        the ids' indices: the groups of indices and the replies, one per shard."""
        groups = self._by_shard(ids)
        calls = [
            ([self._div_keys[shard]], [*args, self._key_heads[shard], payload(indices)])
            for shard, indices in groups.items()
        ]
        return groups, self._scripts(name, calls) if calls else []

    def _per_id(
        self, name: str, ids: Sequence[str], columns: Sequence[Sequence[Any]], args: list[Any]
    ) -> list[int]:
        """CLAIM or COMMIT of ids, each with its values in `columns` (the fingerprints, and for
        COMMIT the extra link bits): one result digit per id, in input order.

        Standalone: the script's _FLAT form, one call per CALL_IDS ids, all in one pipeline;
        Cluster: one call per shard.
        """
        if self.cluster:
            groups, replies = self._per_shard(
                name, ids, args, lambda indices: rows(ids, columns, indices)
            )
            return scatter(len(ids), groups, replies)
        calls = []
        for start in range(0, len(ids), CALL_IDS):
            end = start + CALL_IDS
            keys = [self.key(ident) for ident in ids[start:end]]
            values = (column[start:end] for column in columns)
            flat = [v for row in zip(keys, *values, strict=True) for v in row]
            calls.append(((), [*args, self._div_keys[0], encode(flat)]))
        replies = self._scripts(f"{name}_FLAT", calls) if calls else []
        return [digit - 48 for reply in replies for digit in reply]

    def forward_marks(self, ids: Sequence[str]) -> list[int | None]:
        """The time (ms) each id's unfinished earlier claim was made (kept by the pending claim
        that took it over); None where the claim holds none (settled, or an older layout)."""

        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for ident in ids:
                pipe.get(self.key(ident))
            return cast(list[Any], pipe.execute())

        return [claim_since(value) for value in self._call(read)]

    def lookup(self, ident: str) -> Claim | None:
        raw, ttl, now = self._scripts("LOOKUP", [([self.key(ident)], [])])[0]
        return None if raw is None else parse_claim(raw, ttl, now)

    # --- divergence ------------------------------------------------------------------------

    def pop_due(self, cutoff_ms: int, every_link: int) -> tuple[int, list[tuple[str, int | None]]]:
        """Pops the ids first claimed in seconds that ended by `cutoff_ms`: how many, and those
        a link of the mask `every_link` lacks, each with its links mask (None: claim gone)."""
        if self.cluster:
            calls = [
                ([key], [cutoff_ms, POP_LIMIT, head, every_link])
                for key, head in zip(self._div_keys, self._key_heads, strict=True)
            ]
        else:  # the lists of shard 0 hold every shard's whole keys (lua.py, CLAIM_FLAT)
            calls = [([self._div_keys[0]], [cutoff_ms, POP_LIMIT, "", every_link])]
        popped, diverged = 0, []
        for reply in self._scripts("POP_DUE", calls):
            popped += reply[0]
            for entry, mask in zip(reply[1::2], reply[2::2], strict=True):
                ident = entry.decode()
                if not self.cluster:
                    # "{prefix}:{" + shard + "}:i:" + id
                    ident = ident[len(self.prefix) + 2 :].split("}:i:", 1)[1]
                diverged.append((ident, int(mask) if mask else None))
        return popped, diverged

    # --- stats and health ------------------------------------------------------------------

    def add_stats(self, deltas: dict[str, int]) -> None:
        def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            for field, delta in deltas.items():
                pipe.hincrby(self.stats_key, field, delta)
            pipe.execute()

        if deltas:
            self._call(write)

    def read_stats(self) -> dict[str, int]:
        return self._hash(self.stats_key)

    def _hash(self, key: str) -> dict[str, int]:
        """A Redis hash of integers, its field names decoded."""
        reply = self._call(lambda: self.client.hgetall(key))
        table = cast("dict[bytes, bytes]", reply)  # connect() does not ask for decoded replies
        return {name.decode(): int(value) for name, value in table.items()}

    def reachable(self) -> bool:
        """Whether Redis answers: yes without a round trip while any call got an answer in the
        last HEALTH_FRESH seconds (under load /healthz does not queue behind the claim scripts),
        else a PING."""
        if self._available and time.monotonic() - self._answered_at <= HEALTH_FRESH:
            return True
        return self.ping()

    def ping(self) -> bool:
        try:
            self._call(self.client.ping)
            return True
        except RedisUnavailable:
            return False

    def server_warnings(self) -> list[str]:
        """Why this Redis could lose claims: eviction, or no persistence."""
        try:
            policy = self._call(lambda: self.client.config_get("maxmemory-policy"))
            aof = self._call(lambda: self.client.config_get("appendonly"))
            save = self._call(lambda: self.client.config_get("save"))
        except rexc.ResponseError as exc:
            return [f"cannot check the Redis configuration (CONFIG GET refused: {exc})"]
        warnings = []
        policy_value = next(iter(policy.values()), "noeviction")
        if policy_value != "noeviction":
            warnings.append(
                f"Redis maxmemory-policy is {policy_value!r}: under memory pressure it evicts claims "
                "and their records are then delivered twice; set maxmemory-policy noeviction"
            )
        if next(iter(aof.values()), "no") != "yes" and not next(iter(save.values()), ""):
            warnings.append(
                "Redis persistence is off (appendonly no, no save points): a Redis restart forgets "
                "every claim and records are then delivered twice; set appendonly yes"
            )
        return warnings
