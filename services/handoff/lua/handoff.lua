#!lua name=handoff_v1
--[[
The atomic steps on an interaction's state. Each function runs as one Redis step: nothing
else reads or writes in between, so read-check-write can never lose an update.

Keys of one interaction all carry the shard's hash tag {hN} (see keys.py): state, lease,
history, transcript and markers of an interaction live on the same slot as the shard's
deadline index and outbox, which lets one function write them all, also on Redis Cluster.
Functions derive an interaction's key names from ARGV (tag + interaction key); they are on
the slot of the declared KEYS.

Clock: Redis TIME, the one clock every service shares.

Markers (seen / reply / cmd) store the decision made for an input record together with the
record's position (src = topic/partition/offset). The same record handled again (a replay
after a crash or rebalance) gets the stored decision back, so its outputs are identical; the
same id at another position is a repeat from the channel and is dropped (R10).
]]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function key(kind, tag, ikey)
  return 'ho:' .. kind .. ':' .. tag .. ':' .. ikey
end

local function load_state(state_key)
  local flat = redis.call('HGETALL', state_key)
  local st = {}
  for i = 1, #flat, 2 do st[flat[i]] = flat[i + 1] end
  st.mode = st.mode or 'ai'
  st.version = tonumber(st.version or '0')
  return st
end

local STATE_FIELDS = {'mode', 'cause', 'actor', 'reason', 'changed_at', 'expires_at',
                      'idle_ms', 'human_since', 'version', 'command_id'}

-- Writes the state hash and keeps lease and deadline index in step with it.
local function write_state(tag, ikey, st)
  local args = {}
  for _, f in ipairs(STATE_FIELDS) do
    args[#args + 1] = f
    args[#args + 1] = tostring(st[f] or '')
  end
  redis.call('HSET', key('state', tag, ikey), unpack(args))
  local lease, deadlines = key('lease', tag, ikey), 'ho:deadlines:' .. tag
  if st.mode == 'human' and (st.expires_at or '') ~= '' then
    redis.call('SET', lease, st.version, 'PXAT', st.expires_at)
    redis.call('ZADD', deadlines, st.expires_at, ikey)
  else
    redis.call('DEL', lease)
    redis.call('ZREM', deadlines, ikey)
  end
end

local function push_history(tag, ikey, change_json, cap)
  local history = key('history', tag, ikey)
  redis.call('LPUSH', history, change_json)
  redis.call('LTRIM', history, 0, cap - 1)
end

-- Human mode with an idle timeout whose lease is gone: the AI is back (R5).
local function lease_expired(tag, ikey, st)
  return st.mode == 'human' and (st.idle_ms or '') ~= ''
    and redis.call('EXISTS', key('lease', tag, ikey)) == 0
end

-- Applies the timeout revert and queues its ModeChanged in the shard's outbox, which the
-- timeout worker publishes. Returns the new state.
local function revert_expired(tag, ikey, st, now, history_cap)
  local new = {
    mode = 'ai', cause = 'timeout', actor = 'system:timeout',
    reason = 'The idle timeout expired with no new user message.',
    changed_at = now, expires_at = '', idle_ms = '', human_since = '',
    version = st.version + 1, command_id = '',
  }
  write_state(tag, ikey, new)
  local change = cjson.encode({
    event_id = 'tmo-' .. redis.sha1hex(ikey .. '\31' .. new.version),
    ikey = ikey, from_mode = 'human', to_mode = 'ai', cause = 'timeout', actor = new.actor,
    reason = new.reason, changed_at = now, due_at = tonumber(st.expires_at),
    version = new.version,
  })
  push_history(tag, ikey, change, history_cap)
  -- Time-based ids (never reused, even after Redis lost its data): the timeout worker
  -- checkpoints the last one it published in Kafka.
  redis.call('XADD', 'ho:outbox:' .. tag, '*', 'change', change)
  return new
end

-- Queues records for the relay (the timeout worker) to publish on Kafka exactly once, in the
-- same atomic step as the state change they announce. outputs: an array of
-- {role, key, value_json}; role names the topic (events, outbound, human_queue).
local function outbox_emit(tag, outputs)
  if #outputs == 0 then return end
  redis.call('XADD', 'ho:outbox:' .. tag, '*', 'out', cjson.encode(outputs))
end

local function marker_hit(marker_key, src)
  local stored = redis.call('GET', marker_key)
  if not stored then return nil end
  local d = cjson.decode(stored)
  if d.src == src then d.status = 'replay' else d = {status = 'duplicate'} end
  return cjson.encode(d)
end

local function optional_number(v)
  if v == nil or v == '' then return nil end
  return tonumber(v)
end

--[[ ho_route: route one user message (router, R4 R5 R10 R12).
KEYS: seen marker, deadlines, outbox
ARGV: tag, ikey, src, turn_json ('' = record nothing), stateless ('1' = live test or anonymous),
      marker_ttl_ms, transcript_cap, history_cap ]]
local function ho_route(keys, args)
  local tag, ikey, src, turn = args[1], args[2], args[3], args[4]
  local stateless, ttl = args[5] == '1', tonumber(args[6])
  local transcript_cap, history_cap = tonumber(args[7]), tonumber(args[8])
  local hit = marker_hit(keys[1], src)
  if hit then return hit end
  local now = now_ms()
  local d = {src = src, decided_at = now}
  if stateless then
    d.mode, d.version, d.stateless = 'ai', 0, 1
  else
    local st = load_state(key('state', tag, ikey))
    if lease_expired(tag, ikey, st) then st = revert_expired(tag, ikey, st, now, history_cap) end
    if st.mode == 'human' and (st.idle_ms or '') ~= '' then
      st.expires_at = now + tonumber(st.idle_ms)
      redis.call('HSET', key('state', tag, ikey), 'expires_at', st.expires_at)
      redis.call('SET', key('lease', tag, ikey), st.version, 'PXAT', st.expires_at)
      redis.call('ZADD', keys[2], st.expires_at, ikey)
    end
    if turn ~= '' then
      redis.call('XADD', key('transcript', tag, ikey), 'MAXLEN', '~', transcript_cap, '*',
                 'turn', turn)
    end
    d.mode, d.version = st.mode, st.version
    d.cause = st.cause ~= '' and st.cause or nil
    d.human_since = optional_number(st.human_since)
    d.expires_at = optional_number(st.expires_at)
  end
  redis.call('SET', keys[1], cjson.encode(d), 'PX', ttl)
  d.status = 'routed'
  return cjson.encode(d)
end

--[[ ho_route_many: ho_route for the messages of one shard in a batch, in their order: one
call per shard group instead of one per message (the router's batches).
KEYS: deadlines, outbox, then each message's seen marker
ARGV: tag, marker_ttl_ms, transcript_cap, history_cap, then per message: ikey, src,
      turn_json, stateless
Returns each message's ho_route result, in order. ]]
local function ho_route_many(keys, args)
  local tag, ttl, transcript_cap, history_cap = args[1], args[2], args[3], args[4]
  local results = {}
  for i = 3, #keys do
    local a = 5 + (i - 3) * 4
    results[#results + 1] = ho_route(
      {keys[i], keys[1], keys[2]},
      {tag, args[a], args[a + 1], args[a + 2], args[a + 3], ttl, transcript_cap, history_cap})
  end
  return results
end

--[[ ho_gate: may this agent reply reach the user? (reply gate, R9)
KEYS: reply marker, seen marker of the message it answers
ARGV: tag, ikey, src, state_version, turn_json, marker_ttl_ms, transcript_cap ]]
local function ho_gate(keys, args)
  local tag, ikey, src, version, turn = args[1], args[2], args[3], tonumber(args[4]), args[5]
  local ttl, transcript_cap = tonumber(args[6]), tonumber(args[7])
  local hit = marker_hit(keys[1], src)
  if hit then return hit end
  local d = {src = src}
  local routed = redis.call('GET', keys[2])
  if routed and cjson.decode(routed).stateless then
    d.verdict = 'forwarded'
  else
    local st = load_state(key('state', tag, ikey))
    if st.mode ~= 'ai' then
      d.verdict = 'suppressed_human_mode'
    elseif st.version ~= version then
      d.verdict = 'suppressed_stale_version'
    else
      d.verdict = 'forwarded'
      redis.call('XADD', key('transcript', tag, ikey), 'MAXLEN', '~', transcript_cap, '*',
                 'turn', turn)
    end
    d.current_version = st.version
  end
  redis.call('SET', keys[1], cjson.encode(d), 'PX', ttl)
  d.status = 'decided'
  return cjson.encode(d)
end

--[[ ho_apply: a command's decision, written if the state is still at expected_version.
KEYS: command marker, deadlines
ARGV: tag, ikey, src, expected_version, state_json ('' = no state change: a rejection),
      change_json, result_json (stored in the marker), marker_ttl_ms, history_cap,
      transcript_turn ('' = none: the handoff notice), transcript_cap,
      to_outbox ('1': the result's outputs are queued in the shard outbox — a command that
      did not come from a Kafka consumer, whose transaction would carry them) ]]
local function ho_apply(keys, args)
  local tag, ikey, src, expected = args[1], args[2], args[3], tonumber(args[4])
  local state_json, change, result = args[5], args[6], args[7]
  local ttl, history_cap = tonumber(args[8]), tonumber(args[9])
  local turn, transcript_cap, to_outbox = args[10], tonumber(args[11]), args[12] == '1'
  local hit = marker_hit(keys[1], src)
  if hit then return hit end
  local current = load_state(key('state', tag, ikey))
  if lease_expired(tag, ikey, current) then
    -- The user is back on AI already (R5); make it so, then let the caller decide again.
    current = revert_expired(tag, ikey, current, now_ms(), history_cap)
    return cjson.encode({status = 'conflict', version = current.version})
  end
  if state_json ~= '' then
    if current.version ~= expected then
      return cjson.encode({status = 'conflict', version = current.version})
    end
    write_state(tag, ikey, cjson.decode(state_json))
    push_history(tag, ikey, change, history_cap)
    if turn ~= '' then
      redis.call('XADD', key('transcript', tag, ikey), 'MAXLEN', '~', transcript_cap, '*',
                 'turn', turn)
    end
  end
  local stored = cjson.decode(result)
  stored.src = src
  redis.call('SET', keys[1], cjson.encode(stored), 'PX', ttl)
  if to_outbox then outbox_emit(tag, stored.outputs) end
  stored.status = 'applied'
  return cjson.encode(stored)
end

--[[ ho_desk_reply: a teammate's reply sent through the operator API: recorded in the
transcript and queued (with its audit record) in the outbox, only while in human mode.
KEYS: outbox. ARGV: tag, ikey, turn_json, outputs_json, transcript_cap
Returns 'sent' or 'not_in_human_mode'. ]]
local function ho_desk_reply(keys, args)
  local tag, ikey, turn, outputs = args[1], args[2], args[3], cjson.decode(args[4])
  local st = load_state(key('state', tag, ikey))
  if st.mode ~= 'human' or lease_expired(tag, ikey, st) then return 'not_in_human_mode' end
  redis.call('XADD', key('transcript', tag, ikey), 'MAXLEN', '~', tonumber(args[5]), '*',
             'turn', turn)
  outbox_emit(tag, outputs)
  return 'sent'
end

--[[ ho_expire_due: revert every interaction of a shard whose lease ran out (timeout worker).
Claiming and reverting are one step, so two workers never revert (nor emit) one expiry twice.
KEYS: deadlines, outbox
ARGV: tag, limit, history_cap ]]
local function ho_expire_due(keys, args)
  local tag, limit, history_cap = args[1], tonumber(args[2]), tonumber(args[3])
  local now = now_ms()
  local due = redis.call('ZRANGE', keys[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  local reverted = 0
  for _, ikey in ipairs(due) do
    local st = load_state(key('state', tag, ikey))
    if lease_expired(tag, ikey, st) then
      revert_expired(tag, ikey, st, now, history_cap)
      reverted = reverted + 1
    elseif st.mode == 'human' and (st.expires_at or '') ~= '' then
      redis.call('ZADD', keys[1], st.expires_at, ikey)  -- moved forward meanwhile
    else
      redis.call('ZREM', keys[1], ikey)
    end
  end
  return reverted
end

-- An agent event numbered with version n, queued in the agent's shard outbox with the
-- records that come with it (its audit record, whose text may say `{version}` for n, a
-- number only this step knows). The event id is derived from what it is.
local function emit_agent_event(tag, event_json, n, extra_json)
  local event = cjson.decode(event_json)
  event.version = n
  event.event_id = event.type .. '-' .. redis.sha1hex(
    event.tenant_id .. '\31' .. event.agent_id .. '\31' .. n)
  local outputs = {{'events', event.tenant_id .. ':' .. event.agent_id, cjson.encode(event)}}
  for _, extra in ipairs(cjson.decode(extra_json)) do
    extra[3] = string.gsub(extra[3], '{version}', tostring(n))
    outputs[#outputs + 1] = extra
  end
  outbox_emit(tag, outputs)
end

--[[ ho_agent_apply: a new immutable agent version, announced by an AgentVersionApplied.
KEYS: agent hash, its shard's outbox. ARGV: tag, version_json, event_json, extra_outputs_json ]]
local function ho_agent_apply(keys, args)
  local n = redis.call('HINCRBY', keys[1], 'latest', 1)
  redis.call('HSET', keys[1], 'v' .. n, args[2])
  emit_agent_event(args[1], args[3], n, args[4])
  return n
end

--[[ ho_agent_publish: publish version n, announced by an AgentVersionPublished.
KEYS: agent hash, its shard's outbox. ARGV: tag, n, event_json, extra_outputs_json ]]
local function ho_agent_publish(keys, args)
  if redis.call('HEXISTS', keys[1], 'v' .. args[2]) == 0 then
    return redis.error_reply('NO_SUCH_VERSION')
  end
  redis.call('HSET', keys[1], 'published', args[2])
  emit_agent_event(args[1], args[3], tonumber(args[2]), args[4])
  return tonumber(args[2])
end

-- ho_time: Redis TIME, routed by the key it names (a plain TIME has no key, and Redis
-- Cluster pipelines refuse keyless commands). KEYS: any key of the node to ask.
redis.register_function{
  function_name = 'ho_time',
  callback = function(keys, args) return redis.call('TIME') end,
  flags = {'no-writes'},
}
redis.register_function('ho_route_many', ho_route_many)
redis.register_function('ho_gate', ho_gate)
redis.register_function('ho_apply', ho_apply)
redis.register_function('ho_expire_due', ho_expire_due)
redis.register_function('ho_desk_reply', ho_desk_reply)
redis.register_function('ho_agent_apply', ho_agent_apply)
redis.register_function('ho_agent_publish', ho_agent_publish)
