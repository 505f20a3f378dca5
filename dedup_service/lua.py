"""The Lua scripts the store runs; each touches keys of one hash slot only (Redis Cluster safe).

Every script gets KEYS[1] = a key of the shard (its divergence set), which routes the call; the
id keys it touches are ARGV's key head (`{prefix}:{shard}:i:`, same hash tag, same slot) plus
the id. Ids travel as one JSON array per call (cjson decodes it in C): far cheaper than one
argument per id. Results come back as one string with a digit per id.

A claim's value is the string `STATE|MASK|FIRST|FP|TOKEN|SINCE|UNTIL`: STATE P (pending: being
forwarded) or C (committed: expires after window), MASK the bitmask of the links a copy arrived on,
FIRST the bit of the link whose copy won, FP the content fingerprint (empty: unknown); a pending
claim also holds TOKEN (its holder), SINCE (the time of the first unsettled claim, ms, the caller's
clock) and UNTIL (the end of the holder's lease, ms, Redis's clock: pending_timeout after the
claim); a committed one ends after FP's `|`.

A pending claim lives as long as a committed one (TTL window): it outlives its lease. A claim that
finds another holder's pending claim waits while the lease runs (PENDING); once the lease is over,
that holder neither committed nor released it (it crashed, or its sink was slower than
pending_timeout): the record may have reached the sink already, so the claim takes it over and
answers REFORWARD (4) instead of FIRST, SINCE stays the first holder's time, and the forwarder
asks the sink whether it has the record. (Before this layout a pending claim expired with its
lease and left a separate forwarding mark key; such marks are no longer read.)

Divergence: an id goes into one list per second, `{prefix}:{S}:d:{second}` (TTL window), whose
second the shard's sorted set `{prefix}:{S}:d` holds, scored by the second's last millisecond;
POP_DUE pops whole due seconds. An id is listed when it is committed (a one-phase claim, or the
commit of a pending one, in the second of the commit) and only if its mask then lacks a link of
`full` (the links registered, or -1 while fewer than two are: Store.every_link): an id whose
copies all arrived before its commit (the usual case with redundant links, held.py) is never
listed, never popped, never read back.
"""

# Result digits shared with store.py.
FIRST, DUPLICATE, CONFLICT, PENDING, REFORWARD = 0, 1, 2, 3, 4
COMMITTED, ALREADY_COMMITTED, HELD_BY_OTHER = 0, 1, 2

_PARSE = "string.match(v, '^(%u)|(%d+)|(%d+)|([^|]*)|([^|]*)|?(%d*)|?(%d*)$')"
_PUSH_DUE = """local function push_due(dkey, due, now, window)
  local second = math.floor(tonumber(now) / 1000)
  local list = dkey .. ':' .. second
  local length = 0
  for i = 1, #due, 4000 do
    length = redis.call('RPUSH', list, unpack(due, i, math.min(i + 3999, #due)))
  end
  if length == #due then
    redis.call('PEXPIRE', list, window)
    redis.call('ZADD', dkey, second * 1000 + 999, second)
  end
end
"""
_NOW = """local clock = redis.call('TIME')
local rnow = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# ARGV: now_ms, ttl_ms (the lease, or the window of a one-phase claim), state (P|C), token, link
#       bit index, track (0|1), window_ms, full (links mask), key head,
#       JSON [id1, fp1, id2, fp2, ...]. A one-phase claim lists what it commits (divergence).
# Per id: 0 first (also: a pending claim of this very token), 1 duplicate, 2 conflict (same id,
# other fingerprint), 3 pending under another holder's lease, 4 first again: taken over from a
# holder whose lease ended unsettled (a possible re-forward; a one-phase claim answers 0 and
# commits it). Every copy marks its link.
_CLAIM = f"""
local now, ttl, state, token = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local index = tonumber(ARGV[5])
local linkbit = bit.lshift(1, index)
local track = ARGV[6] == '1' and state == 'C'
local window = ARGV[7]
local full = bit.tobit(tonumber(ARGV[8]))
{_NOW}{_PUSH_DUE}local tail, px = '|', ttl
if state == 'P' then tail, px = '|' .. token .. '|' .. now .. '|' .. (rnow + ttl), window end
local fresh = state .. '|' .. linkbit .. '|' .. index .. '|'
local function shard(dkey, head, data)
local out, due = {{}}, {{}}
for i = 1, #data, 2 do
  local id, fp = data[i], data[i + 1]
  local key = head .. id
  local v = redis.call('SET', key, fresh .. fp .. tail, 'NX', 'PX', px, 'GET')
  if not v then
    out[#out + 1] = '0'
    if track and bit.band(linkbit, full) ~= full then due[#due + 1] = id end
  else
    local s, mask, first, sfp, stok, since, till = {_PARSE}
    if not s then
      out[#out + 1] = '1'
    else
      local r = '1'
      local old = tonumber(mask)
      local new = bit.bor(old, linkbit)
      if sfp ~= '' and fp ~= '' and sfp ~= fp then r = '2'
      elseif s == 'P' and stok == token then r = '0'
      elseif s == 'P' and till ~= '' and tonumber(till) < rnow then
        if fp == '' then fp = sfp end
        if state == 'P' then
          redis.call('SET', key, 'P|' .. new .. '|' .. index .. '|' .. fp .. '|' .. token .. '|'
            .. since .. '|' .. (rnow + ttl), 'PX', window)
          r = '4'
        else
          redis.call('SET', key, 'C|' .. new .. '|' .. index .. '|' .. fp .. '|', 'PX', ttl)
          r = '0'
          if track and bit.band(new, full) ~= full then due[#due + 1] = id end
        end
        old = new
      elseif s == 'P' then r = '3' end
      if new ~= old then
        local rest = ''
        if s == 'P' then rest = stok .. '|' .. since .. '|' .. till end
        redis.call('SET', key, s .. '|' .. new .. '|' .. first .. '|' .. sfp .. '|' .. rest, 'KEEPTTL')
      end
      out[#out + 1] = r
    end
  end
end
if #due > 0 then push_due(dkey, due, now, window) end
return table.concat(out)
end
"""

# ARGV: window_ms, token, link bit index, now_ms, track (0|1), full (links mask), key head,
# JSON [id1, fp1, extra1, ...], where extra holds the bits of links whose copies waited on this
# claim in the committing process (held.py): they are marked with the commit, so those copies
# need no claim of their own.
# Per id: 0 committed (a claim lost to a Redis restart is recreated: the record *was* forwarded),
# 1 already committed (the extra bits marked as well), 2 pending under another token (our lease
# ended and another copy took the claim over: a duplicate is possible).
_COMMIT = f"""
local ttl, token = ARGV[1], ARGV[2]
local index = tonumber(ARGV[3])
local now, track = ARGV[4], ARGV[5] == '1'
local full = bit.tobit(tonumber(ARGV[6]))
local linkbit = bit.lshift(1, index)
{_PUSH_DUE}local function shard(dkey, head, data)
local out, due = {{}}, {{}}
for i = 1, #data, 3 do
  local key, extra = head .. data[i], data[i + 2]
  local v = redis.call('GET', key)
  if not v then
    local new = bit.bor(linkbit, extra)
    redis.call('SET', key, 'C|' .. new .. '|' .. index .. '|' .. data[i + 1] .. '|', 'PX', ttl)
    out[#out + 1] = '0'
    if track and bit.band(new, full) ~= full then due[#due + 1] = data[i] end
  else
    local s, mask, first, sfp, stok = {_PARSE}
    local old = tonumber(mask)
    local new = bit.bor(old or 0, extra)
    if s == 'P' and stok == token then
      redis.call('SET', key, 'C|' .. new .. '|' .. first .. '|' .. sfp .. '|', 'PX', ttl)
      out[#out + 1] = '0'
      if track and bit.band(new, full) ~= full then due[#due + 1] = data[i] end
    elseif s == 'P' then
      out[#out + 1] = '2'
    else
      if s and new ~= old then
        redis.call('SET', key, 'C|' .. new .. '|' .. first .. '|' .. sfp .. '|', 'KEEPTTL')
      end
      out[#out + 1] = '1'
    end
  end
end
if #due > 0 then push_due(dkey, due, now, ttl) end
return table.concat(out)
end
"""

# ARGV: token, key head, JSON [id1, id2, ...]. Deletes the pending claims this token holds.
RELEASE = f"""
local released = 0
local head = ARGV[2]
for _, id in ipairs(cjson.decode(ARGV[3])) do
  local key = head .. id
  local v = redis.call('GET', key)
  if v then
    local s, mask, first, sfp, stok = {_PARSE}
    if s == 'P' and stok == ARGV[1] then
      redis.call('DEL', key)
      released = released + 1
    end
  end
end
return released
"""

# Each of CLAIM and COMMIT runs its `shard` function on one shard (Redis Cluster: KEYS[1], the
# shard's divergence set, routes the call; the last ARGV are the key head and the JSON pairs) or,
# as CLAIM_FLAT / COMMIT_FLAT, on a whole batch in one call (standalone Redis, where a script may
# touch keys of any slot): the JSON pairs then carry whole keys ([key1, fp1, ...], key head ''),
# the divergence lists are those of shard 0's set and hold whole keys, and the reply is one digit
# per pair in input order (no per-shard grouping: a batch of a few hundred ids spreads over all
# 64 shards, a handful each, and the per-shard steps cost Redis about as much as the ids did).
_ONE = "return shard(KEYS[1], ARGV[#ARGV - 1], cjson.decode(ARGV[#ARGV]))\n"
_FLAT = "return shard(ARGV[#ARGV - 1], '', cjson.decode(ARGV[#ARGV]))\n"
CLAIM = _CLAIM + _ONE
CLAIM_FLAT = _CLAIM + _FLAT
COMMIT = _COMMIT + _ONE
COMMIT_FLAT = _COMMIT + _FLAT

# KEYS[1] a shard's divergence set. ARGV: cutoff_ms, limit, the shard's key head ('' where the
# lists hold whole keys), the mask of every registered link. Pops (atomically, so that of
# several instances sweeping only one judges each id) up to `limit` ids of the seconds that
# ended by the cutoff, and looks up their claims: {popped, id, mask, ...} naming only the ids
# some link's copy did not reach (mask '' when the claim is gone).
POP_DUE = """
local limit, head, full = tonumber(ARGV[2]), ARGV[3], bit.tobit(tonumber(ARGV[4]))
local out, popped = {0}, 0
for _, second in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)) do
  local list = KEYS[1] .. ':' .. second
  local ids = redis.call('LPOP', list, limit - popped)
  if ids then
    popped = popped + #ids
    for _, id in ipairs(ids) do
      local v = redis.call('GET', head .. id)
      local mask = v and string.match(v, '^%u|(%d+)|')
      if not mask then
        out[#out + 1] = id
        out[#out + 1] = ''
      elseif bit.band(tonumber(mask), full) ~= full then
        out[#out + 1] = id
        out[#out + 1] = mask
      end
    end
  end
  if redis.call('EXISTS', list) == 0 then redis.call('ZREM', KEYS[1], second) end
  if popped >= limit then break end
end
out[1] = popped
return out
"""

# KEYS[1] a claim. Its value (false when there is none), its TTL and Redis's time (ms).
LOOKUP = f"""
{_NOW}return {{redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), rnow}}
"""

# KEYS[1] the link registry hash. ARGV: link name, max links. The link's bit index, -1 when full.
REGISTER_LINK = """
local index = redis.call('HGET', KEYS[1], ARGV[1])
if index then return tonumber(index) end
local count = redis.call('HLEN', KEYS[1])
if count >= tonumber(ARGV[2]) then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], count)
return count
"""
