"""The Lua scripts the store runs; each touches keys of one hash slot only (Redis Cluster safe).

Every script gets KEYS[1] = a key of the shard (its divergence set), which routes the call; the
id keys it touches are ARGV's key head (`{prefix}:{shard}:i:`, same hash tag, same slot) plus
the id. Ids travel as one JSON array per call (cjson decodes it in C): far cheaper than one
argument per id. Results come back as one string with a digit per id.

A claim's value is the string `STATE|MASK|FIRST|FP|TOKEN`: STATE P (pending: being forwarded,
expires after pending_timeout) or C (committed: expires after window), MASK the bitmask of the
links a copy arrived on, FIRST the bit of the link whose copy won, FP the content fingerprint
(empty: unknown), TOKEN the holder of a pending claim (empty once committed).

A pending claim also sets a forwarding mark `{prefix}:{shard}:f:{id}` (same slot, TTL window),
whose value is the claim's time (ms), deleted by its commit or release. A mark still there when
the id is claimed again means an earlier holder claimed it at that time and then neither
committed nor released it (it crashed, or its lease expired while its sink was slow): the record
may have reached the sink already, so the claim answers REFORWARD (4) instead of FIRST, the mark
keeps the first holder's time, and the forwarder asks the sink whether it has the record.
"""

# Result digits shared with store.py.
FIRST, DUPLICATE, CONFLICT, PENDING, REFORWARD = 0, 1, 2, 3, 4
COMMITTED, ALREADY_COMMITTED, HELD_BY_OTHER = 0, 1, 2

_PARSE = "string.match(v, '^(%u)|(%d+)|(%d+)|([^|]*)|(.*)$')"

# ARGV: now_ms, ttl_ms, state (P|C), token, link bit index, track (0|1), window_ms, key head,
#       JSON [id1, fp1, id2, fp2, ...].
# Per id: 0 first (also: a pending claim of this very token), 1 duplicate, 2 conflict (same id,
# other fingerprint), 3 pending under another token, 4 first again after a pending claim that
# was neither committed nor released (a possible re-forward). Every copy marks its link.
_CLAIM = f"""
local now, ttl, state, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local index = tonumber(ARGV[5])
local linkbit = bit.lshift(1, index)
local track = ARGV[6] == '1'
local window = ARGV[7]
local holder = ''
if state == 'P' then holder = token end
local fresh = state .. '|' .. linkbit .. '|' .. index .. '|'
local function shard(dkey, head, data)
local mhead = string.sub(head, 1, -3) .. 'f:'
local out, due = {{}}, {{}}
for i = 1, #data, 2 do
  local id, fp = data[i], data[i + 1]
  local key = head .. id
  local v = redis.call('SET', key, fresh .. fp .. '|' .. holder, 'NX', 'PX', ttl, 'GET')
  if not v then
    local r = '0'
    if state == 'P' then
      local mark = mhead .. id
      if redis.call('EXISTS', mark) == 1 then r = '4'
      else redis.call('SET', mark, now, 'PX', window) end
    end
    out[#out + 1] = r
    if track then
      due[#due + 1] = now
      due[#due + 1] = id
      if #due >= 2000 then
        redis.call('ZADD', dkey, unpack(due))
        due = {{}}
      end
    end
  else
    local s, mask, first, sfp, stok = {_PARSE}
    if not s then
      out[#out + 1] = '1'
    else
      local r = '1'
      if sfp ~= '' and fp ~= '' and sfp ~= fp then r = '2'
      elseif s == 'P' and stok == token then r = '0'
      elseif s == 'P' then r = '3' end
      local old = tonumber(mask)
      local new = bit.bor(old, linkbit)
      if new ~= old then
        redis.call('SET', key, s .. '|' .. new .. '|' .. first .. '|' .. sfp .. '|' .. stok, 'KEEPTTL')
      end
      out[#out + 1] = r
    end
  end
end
if #due > 0 then redis.call('ZADD', dkey, unpack(due)) end
return table.concat(out)
end
"""

# ARGV: window_ms, token, link bit index, key head, JSON [id1, fp1, ...].
# Per id: 0 committed (a claim lost to a Redis restart is recreated: the record *was* forwarded),
# 1 already committed, 2 pending under another token (our lease expired: a duplicate is possible).
_COMMIT = f"""
local ttl, token = ARGV[1], ARGV[2]
local index = tonumber(ARGV[3])
local lost = 'C|' .. bit.lshift(1, index) .. '|' .. index .. '|'
local function shard(dkey, head, data)
local mhead = string.sub(head, 1, -3) .. 'f:'
local out = {{}}
for i = 1, #data, 2 do
  local key = head .. data[i]
  local v = redis.call('GET', key)
  if not v then
    redis.call('SET', key, lost .. data[i + 1] .. '|', 'PX', ttl)
    redis.call('DEL', mhead .. data[i])
    out[#out + 1] = '0'
  else
    local s, mask, first, sfp, stok = {_PARSE}
    if s == 'P' and stok == token then
      redis.call('SET', key, 'C|' .. mask .. '|' .. first .. '|' .. sfp .. '|', 'PX', ttl)
      redis.call('DEL', mhead .. data[i])
      out[#out + 1] = '0'
    elseif s == 'P' then
      out[#out + 1] = '2'
    else
      out[#out + 1] = '1'
    end
  end
end
return table.concat(out)
end
"""

# ARGV: token, key head, JSON [id1, id2, ...]. Deletes the pending claims this token holds.
RELEASE = f"""
local released = 0
local head = ARGV[2]
local mhead = string.sub(head, 1, -3) .. 'f:'
for _, id in ipairs(cjson.decode(ARGV[3])) do
  local key = head .. id
  local v = redis.call('GET', key)
  if v then
    local s, mask, first, sfp, stok = {_PARSE}
    if s == 'P' and stok == ARGV[1] then
      redis.call('DEL', key, mhead .. id)
      released = released + 1
    end
  end
end
return released
"""

# Each of CLAIM and COMMIT runs its `shard` function on one shard (Redis Cluster: KEYS[1], the
# shard's divergence set, routes the call; the last ARGV are the key head and the JSON pairs) or,
# as CLAIM_SHARDS / COMMIT_SHARDS, on every shard of a batch in one call (standalone Redis, where
# a script may touch keys of any slot: one EVALSHA per batch instead of one per shard, the
# service's Redis cost per record halved). The last ARGV is then one JSON array of
# [divergence set, key head, [id1, fp1, ...]] per shard; the reply is the shards' digit strings
# concatenated in that order.
_ONE = "return shard(KEYS[1], ARGV[#ARGV - 1], cjson.decode(ARGV[#ARGV]))\n"
_EVERY = """local out = {}
for _, group in ipairs(cjson.decode(ARGV[#ARGV])) do
  out[#out + 1] = shard(group[1], group[2], group[3])
end
return table.concat(out)
"""
CLAIM = _CLAIM + _ONE
CLAIM_SHARDS = _CLAIM + _EVERY
COMMIT = _COMMIT + _ONE
COMMIT_SHARDS = _COMMIT + _EVERY

# KEYS[1] a divergence set. ARGV: cutoff_ms, limit. Pops (atomically, so that of several
# instances sweeping only one sees each id) the ids claimed first before the cutoff.
POP_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
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
