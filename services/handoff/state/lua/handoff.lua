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

local STATE_FIELDS = {'mode', 'cause', 'actor', 'reason', 'changed_at', 'expires_at',
                      'idle_ms', 'human_since', 'version', 'command_id',
                      'return_notice', 'ticket_id', 'pending_context', 'queue'}

-- The state of a stored hash: a field not stored (write_state keeps only those with a
-- value) is empty, as every field of a hash written before was.
local function load_state(state_key)
  local flat = redis.call('HGETALL', state_key)
  local st = {}
  for i = 1, #flat, 2 do st[flat[i]] = flat[i + 1] end
  if #flat > 0 then
    for _, f in ipairs(STATE_FIELDS) do st[f] = st[f] or '' end
  end
  st.mode = st.mode ~= '' and st.mode or 'ai'
  st.version = tonumber(st.version ~= '' and st.version or '0')
  return st
end

-- Writes the state hash: only the fields with a value (a missing field reads as empty, here
-- and in ModeState.from_redis), and anew, so that a hash a long value (a return context)
-- turned into a hashtable is a compact listpack again (bench/memory.py).
local function write_state_hash(tag, ikey, st)
  local args = {}
  for _, f in ipairs(STATE_FIELDS) do
    local v = tostring(st[f] or '')
    if v ~= '' then
      args[#args + 1] = f
      args[#args + 1] = v
    end
  end
  local state = key('state', tag, ikey)
  redis.call('DEL', state)
  redis.call('HSET', state, unpack(args))
end

-- Writes the state hash and keeps lease and deadline index in step with it.
local function write_state(tag, ikey, st)
  write_state_hash(tag, ikey, st)
  local lease, deadlines = key('lease', tag, ikey), 'ho:deadlines:' .. tag
  if st.mode == 'human' and (st.expires_at or '') ~= '' then
    redis.call('SET', lease, st.version, 'PXAT', st.expires_at)
    redis.call('ZADD', deadlines, st.expires_at, ikey)
  else
    redis.call('DEL', lease)
    redis.call('ZREM', deadlines, ikey)
  end
end

-- History entries are stored compactly (services/handoff/state/history.py reads them): a
-- JSON array of the record's `fields` in order, without those the history's key names
-- (`named`), then an object of any further fields (a timeout's due_at).
local function compact_entry(record, fields, named)
  local entry, known = {}, {}
  for f in pairs(named) do known[f] = true end
  for i, f in ipairs(fields) do
    known[f] = true
    if record[f] == nil then entry[i] = cjson.null else entry[i] = record[f] end
  end
  local further, any = {}, false
  for f, v in pairs(record) do
    if not known[f] then further[f], any = v, true end
  end
  if any then entry[#entry + 1] = further end
  return cjson.encode(entry)
end

local HISTORY_FIELDS = {'event_id', 'from_mode', 'to_mode', 'cause', 'actor', 'reason',
                        'changed_at', 'expires_at', 'idle_ms', 'version', 'command_id'}

-- change: the change record, as a table or its JSON.
local function push_history(tag, ikey, change, cap)
  if type(change) == 'string' then change = cjson.decode(change) end
  local history = key('history', tag, ikey)
  redis.call('LPUSH', history, compact_entry(change, HISTORY_FIELDS, {ikey = true}))
  redis.call('LTRIM', history, 0, cap - 1)
end

-- Queues records for the relay (the timeout worker) to publish on Kafka exactly once, in the
-- same atomic step as the state change they announce. outputs: an array of
-- {role, key, value_json}; role names the topic (events, outbound, human_queue).
local function outbox_emit(tag, outputs)
  if #outputs == 0 then return end
  redis.call('XADD', 'ho:outbox:' .. tag, '*', 'out', cjson.encode(outputs))
end

-- Tickets (R14-R18). A ticket's hash and history sit on its interaction's shard; the shard
-- indexes its open tickets (ticket id -> handoff time, for the waiting sweep) and its pickup
-- deadlines (ticket id -> due time, R18). A ticket that ended is kept TICKET_KEEP_MS.
local TICKET_KEEP_MS = 30 * 24 * 3600 * 1000
local TICKET_HISTORY_CAP = 200

local function nonempty(v)
  if v == nil or v == '' or v == cjson.null then return nil end
  return v
end

local function add_turn(tag, ikey, turn_json, transcript_cap)
  redis.call('XADD', key('transcript', tag, ikey), 'MAXLEN', '~', transcript_cap, '*',
             'turn', turn_json)
end


-- RFC 3339 (UTC) of a time in ms, written as pydantic writes it (the same turn rebuilt from
-- the log is the same JSON): Redis' Lua has no os.date.
-- Days to a civil date: H. Hinnant's algorithm.
local function rfc3339(ms)
  local secs = math.floor(ms / 1000)
  local z = math.floor(secs / 86400) + 719468
  local rem = secs % 86400
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  local fraction = ms % 1000 == 0 and '' or string.format('.%03d000', ms % 1000)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d%sZ', year, month, day,
                       math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60, fraction)
end

--[[ The way back (R20) ------------------------------------------------------------------
On every return to the AI the state keeps `pending_context`: what the AI should know of the
human stretch, captured at the return (the ticket may change or go afterwards). The next
message routed to the AI takes it (take_return_context) into its route marker, once. ]]

-- The text set by Python (services/handoff/state/reader.py) when it loads the library: the
-- default return notice of a stretch begun before the notice was captured in the state.
local DEFAULT_RETURN_NOTICE = __DEFAULT_RETURN_NOTICE__

local function load_hash(k)
  local flat = redis.call('HGETALL', k)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- The tickets feature's (R15) hash of one ticket.
local function ticket_key(tag, ticket_id) return 'ho:ticket:' .. tag .. ':' .. ticket_id end

-- The id of the transcript's last entry (nil: none): where a human stretch's turns end.
local function last_turn_id(tag, ikey)
  local last = redis.call('XREVRANGE', key('transcript', tag, ikey), '+', '-', 'COUNT', 1)
  return last[1] and last[1][1] or nil
end

-- st: the state of the human stretch that ends now; ended_by: the cause of the return;
-- upto: the stretch's last transcript entry. Read the ticket after it was resolved (its
-- assignee and resolution note as the stretch left them); `ticket`: its hash, when the
-- caller has read it already.
local function capture_return(tag, ikey, st, ended_by, upto, ticket)
  local ticket_id = nonempty(st.ticket_id)
  ticket = ticket or (ticket_id and load_hash(ticket_key(tag, ticket_id))) or {}
  return cjson.encode({
    ticket_id = ticket_id, reason = st.reason, ended_by = ended_by,
    handled_by = nonempty(ticket.assignee), handled_by_name = nonempty(ticket.assignee_name),
    resolution_note = nonempty(ticket.resolution_note),
    human_since = nonempty(st.human_since), upto = upto,
  })
end

-- Records the return's context in the (already written) AI state, for the next message
-- routed to the AI (take_return_context).
local function record_return(tag, ikey, st, ended_by, upto)
  redis.call('HSET', key('state', tag, ikey), 'pending_context',
             capture_return(tag, ikey, st, ended_by, upto))
end

-- The context for the message being routed to the AI, or nil; consumed. Turns stay JSON
-- strings (a decode/encode round trip would turn empty lists into objects).
local function take_return_context(tag, ikey, st, turns_cap)
  if nonempty(st.pending_context) == nil then return nil end
  redis.call('HSET', key('state', tag, ikey), 'pending_context', '')
  local p = cjson.decode(st.pending_context)
  local turns = {}
  if p.upto and p.human_since and turns_cap > 0 then
    local entries = redis.call('XREVRANGE', key('transcript', tag, ikey), p.upto, p.human_since,
                               'COUNT', turns_cap)
    for i = #entries, 1, -1 do turns[#turns + 1] = entries[i][2][2] end
  end
  p.upto, p.human_since, p.turns = nil, nil, turns
  return p
end

local function conversation_of(turn_json)
  local ok, turn = pcall(cjson.decode, turn_json)
  if ok and type(turn) == 'table' and type(turn.conversation_id) == 'string' then
    return turn.conversation_id
  end
  return nil
end

-- Where a human stretch ends in the transcript: the id of its last entry (nil: none), and
-- the conversation of the latest of the last 20 turns that names one (nil: none). One read
-- when the last turn names it, as it mostly does.
local function transcript_end(tag, ikey)
  local transcript = key('transcript', tag, ikey)
  local entries = redis.call('XREVRANGE', transcript, '+', '-', 'COUNT', 1)
  if not entries[1] then return nil, nil end
  local conversation = conversation_of(entries[1][2][2])
  if conversation == nil then
    entries = redis.call('XREVRANGE', transcript, '+', '-', 'COUNT', 20)
    for i = 2, #entries do
      conversation = conversation_of(entries[i][2][2])
      if conversation then break end
    end
  end
  return entries[1][1], conversation
end

-- The ids of an interaction key (the inverse of schemas' interaction_key): tenant, agent,
-- channel, external id ('' for an anonymous user).
local function ids_of(ikey)
  return string.match(ikey, '^([^:]*):([^:]*):([^:]*):(.*)$')
end

-- The ids of an interaction key as the JSON members of an event about the interaction
-- (tenant_id, agent_id, user).
local function ids_json(ikey)
  local tenant, agent, channel, external = ids_of(ikey)
  return '"tenant_id":' .. cjson.encode(tenant) .. ',"agent_id":' .. cjson.encode(agent)
    .. ',"user":{"channel":' .. cjson.encode(channel) .. ',"external_id":'
    .. (external == '' and 'null' or cjson.encode(external)) .. '}'
end

-- The return notice of a return decided here (not by a Python command): the JSON of the
-- outbound message to queue with the return, also recorded in the transcript. st: the ended
-- stretch; ids: ids_json's; event_id and at (now, RFC 3339) need no escaping. Written out
-- (no cjson.encode of a table): the sweep writes one per revert.
local function return_notice(tag, ikey, ids, st, event_id, at, conversation, transcript_cap)
  local text = cjson.encode(nonempty(st.return_notice) or DEFAULT_RETURN_NOTICE)
  local conv = conversation and cjson.encode(conversation) or 'null'
  -- The turn is written out for another reason too: cjson would encode the empty
  -- attachments list as an object.
  add_turn(tag, ikey, '{"event_id":"' .. event_id .. '","conversation_id":' .. conv
    .. ',"role":"system","text":' .. text .. ',"attachments":[],"at":"' .. at .. '"}',
    transcript_cap)
  return '{"type":"outbound_message","schema_version":1,"event_id":"' .. event_id .. '",'
    .. ids .. ',"conversation_id":' .. conv .. ',"sender":"system","text":' .. text
    .. ',"sent_at":"' .. at .. '"}'
end

-- A ticket's history entry: its TicketChanged without what the ticket names (type, ticket id,
-- the interaction's ids).
local TICKET_HISTORY_FIELDS = {'event_id', 'schema_version', 'queue', 'from_status', 'status',
                               'assignee', 'actor', 'note', 'changed_at', 'ticket_version',
                               'position'}
local OF_THE_TICKET = {type = true, ticket_id = true, tenant_id = true, agent_id = true,
                       user = true}

local function ticket_changed_here(tag, ticket_id, change_json)
  local history = 'ho:ticket_history:' .. tag .. ':' .. ticket_id
  redis.call('LPUSH', history,
             compact_entry(cjson.decode(change_json), TICKET_HISTORY_FIELDS, OF_THE_TICKET))
  redis.call('LTRIM', history, 0, TICKET_HISTORY_CAP - 1)
end

local function ticket_ended(tag, ticket_id)
  redis.call('ZREM', 'ho:tickets:' .. tag, ticket_id)
  redis.call('ZREM', 'ho:pickup:' .. tag, ticket_id)
  redis.call('PEXPIRE', ticket_key(tag, ticket_id), TICKET_KEEP_MS)
  redis.call('PEXPIRE', 'ho:ticket_history:' .. tag .. ':' .. ticket_id, TICKET_KEEP_MS)
end

-- The interaction ids of a ticket's events: from its interaction key (a ticket stored before
-- also holds them as `ids` JSON; the key says the same).
local function ticket_ids(t)
  local tenant, agent, channel, external = ids_of(t.ikey)
  return {tenant_id = tenant, agent_id = agent,
          user = {channel = channel, external_id = external ~= '' and external or cjson.null}}
end

-- The interaction left human mode without a resolution: its open ticket becomes `closed`.
-- Returns the TicketChanged JSON (for the caller to emit), or nil when no ticket was open.
-- t: the ticket's hash, when the caller has read it already; at: now, RFC 3339, likewise.
local function close_ticket(tag, ticket_id, now, actor, note, t, at)
  if (ticket_id or '') == '' then return nil end
  local tk = ticket_key(tag, ticket_id)
  t = t or load_hash(tk)
  if t.status ~= 'queued' and t.status ~= 'assigned' then return nil end
  local version = tonumber(t.version) + 1
  redis.call('HSET', tk, 'status', 'closed', 'version', version, 'ended_at', now)
  local ids = ticket_ids(t)
  local change = cjson.encode({
    type = 'ticket_changed', schema_version = 1,
    event_id = 'tkc-' .. redis.sha1hex(ticket_id .. '\31' .. version),
    tenant_id = ids.tenant_id, agent_id = ids.agent_id, user = ids.user,
    ticket_id = ticket_id, queue = t.queue, from_status = t.status, status = 'closed',
    assignee = (t.assignee or '') ~= '' and t.assignee or cjson.null,
    actor = actor, note = note, changed_at = at or rfc3339(now), ticket_version = version,
    position = cjson.null,
  })
  ticket_changed_here(tag, ticket_id, change)
  ticket_ended(tag, ticket_id)
  return change
end

-- Human mode with an idle timeout whose lease is gone: the AI is back (R5).
local function lease_expired(tag, ikey, st)
  return st.mode == 'human' and (st.idle_ms or '') ~= ''
    and redis.call('EXISTS', key('lease', tag, ikey)) == 0
end

--[[ A timeout revert's records, queued in the shard's outbox for the timeout worker to publish:
its ModeChanged, its return notice (R20) and its ticket's TicketChanged (R15), in that order.
The reverts made by one step share entries, at most REVERTS_PER_ENTRY in one: an entry costs
Redis one XADD, and the relay publishes each entry whole (its budget per sweep counts the
reverts in it). A revert entry holds
- `records`: each record as `role US key US value`, joined by RS;
- `reverts`: each revert as `interaction key US event_id US state_version US due_at (ms)`,
  joined by RS, for the relay's metrics and logs.
Neither needs escaping: JSON text holds no raw control character, and an interaction key's
parts are printable (schemas: Id, ExternalId). cjson's escaping of ~1 KB of JSON per revert
(a JSON array of records) cost the sweep as much as the state change itself. ]]
local REVERTS_PER_ENTRY = 16
local US, RS = '\31', '\30'

-- now: Redis TIME of the step (ms); actor, reason: of the returns (default: the idle
-- timeout's), written into each revert as they are.
local function revert_batch(tag, now, actor, reason)
  actor, reason = actor or __TIMEOUT_ACTOR__, reason or __TIMEOUT_REASON__
  return {
    tag = tag, now = now, now_s = string.format('%d', now), at = rfc3339(now),
    actor = actor, reason = reason, actor_json = cjson.encode(actor),
    reason_json = cjson.encode(reason), records = {}, reverts = {},
  }
end

-- Time-based ids (never reused, even after Redis lost its data): the timeout worker
-- checkpoints the last one it published in Kafka.
local function flush_reverts(batch)
  if #batch.reverts == 0 then return end
  redis.call('XADD', 'ho:outbox:' .. batch.tag, '*', 'reverts', table.concat(batch.reverts, RS),
             'records', table.concat(batch.records, RS))
  batch.reverts, batch.records = {}, {}
end

-- What a timeout revert reads of the state: the fields it uses, in one HMGET (ho_expire_due:
-- a HGETALL and its table walk cost the sweep as much as the revert's own writes).
local function load_revert_state(state_key)
  local v = redis.call('HMGET', state_key, 'mode', 'idle_ms', 'version', 'expires_at', 'reason',
                       'ticket_id', 'human_since', 'return_notice')
  return {
    mode = v[1] or 'ai', idle_ms = v[2] or '', version = tonumber(v[3] or '0'),
    expires_at = v[4] or '', reason = v[5] or nil, ticket_id = v[6] or nil,
    human_since = v[7] or nil, return_notice = v[8] or nil,
  }
end

-- Applies the timeout revert and queues its records (see REVERTS_PER_ENTRY) in the shard's
-- outbox, which the timeout worker publishes. Returns the new state. st: load_state's or
-- load_revert_state's. actor, reason: of a return other than the idle timeout's (R18: nobody
-- picked up). batch: the sweep's (ho_expire_due; it found the lease gone, drops the
-- deadlines it claimed at once and flushes the batch); without one the revert is queued
-- alone. The JSON is written out, not cjson-encoded from tables: it is the sweep's hot path.
local function revert_expired(tag, ikey, st, now, history_cap, transcript_cap, actor, reason,
                              batch)
  local b = batch or revert_batch(tag, now, actor, reason)
  local version = st.version + 1
  local ticket_id = nonempty(st.ticket_id)
  local ticket = ticket_id and load_hash(ticket_key(tag, ticket_id)) or {}
  local upto, conversation = transcript_end(tag, ikey)
  local new = {
    mode = 'ai', cause = 'timeout', actor = b.actor, reason = b.reason, changed_at = b.now_s,
    expires_at = '', idle_ms = '', human_since = '', version = version, command_id = '',
    pending_context = capture_return(tag, ikey, st, 'timeout', upto, ticket),
  }
  write_state_hash(tag, ikey, new)
  if not batch then
    redis.call('DEL', key('lease', tag, ikey))
    redis.call('ZREM', 'ho:deadlines:' .. tag, ikey)
  end
  local v = string.format('%d', version)
  local digest = redis.sha1hex(ikey .. US .. v)
  local event_id, notice_id = 'tmo-' .. digest, 'ret-' .. digest
  local due = (st.expires_at or '') ~= '' and st.expires_at or 'null'
  push_history(tag, ikey, '{"event_id":"' .. event_id .. '","ikey":' .. cjson.encode(ikey)
    .. ',"from_mode":"human","to_mode":"ai","cause":"timeout","actor":' .. b.actor_json
    .. ',"reason":' .. b.reason_json .. ',"changed_at":' .. b.now_s .. ',"due_at":' .. due
    .. ',"version":' .. v .. '}', history_cap)
  local ids = ids_json(ikey)
  -- As services/handoff/domain/events.py mode_changed writes it (a test holds them equal).
  local event = '{"type":"mode_changed","schema_version":1,' .. ids .. ',"event_id":"'
    .. event_id .. '","from_mode":"human","to_mode":"ai","cause":"timeout","actor":'
    .. b.actor_json .. ',"reason":' .. b.reason_json .. ',"changed_at":"' .. b.at
    .. '","expires_at":null,"idle_timeout_minutes":null,"state_version":' .. v
    .. ',"command_id":null}'
  local notice = return_notice(tag, ikey, ids, st, notice_id, b.at, conversation,
                               transcript_cap)
  local records = b.records
  records[#records + 1] = 'events' .. US .. ikey .. US .. event
  records[#records + 1] = 'outbound' .. US .. ikey .. US .. notice
  -- The open ticket closes with the return (R15), in the same entry.
  local closed = ticket_id and close_ticket(tag, ticket_id, now, b.actor, 'mode_returned',
                                            ticket, b.at)
  if closed then records[#records + 1] = 'events' .. US .. ikey .. US .. closed end
  b.reverts[#b.reverts + 1] = ikey .. US .. event_id .. US .. v .. US .. (st.expires_at or '')
  if not batch or #b.reverts >= REVERTS_PER_ENTRY then flush_reverts(b) end
  return new
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

-- Moves the idle expiry of human mode with a timeout to `to_ms` (never back: a desk's
-- extension outlives a user message that would end it sooner). Returns the expiry.
local function extend_lease(tag, ikey, st, to_ms)
  if st.mode ~= 'human' or (st.idle_ms or '') == '' then return optional_number(st.expires_at) end
  local current = optional_number(st.expires_at)
  if current ~= nil and current >= to_ms then return current end
  st.expires_at = to_ms
  redis.call('HSET', key('state', tag, ikey), 'expires_at', to_ms)
  redis.call('SET', key('lease', tag, ikey), st.version, 'PXAT', to_ms)
  redis.call('ZADD', 'ho:deadlines:' .. tag, to_ms, ikey)
  return to_ms
end

--[[ ho_route: route one user message (router, R4 R5 R10 R12, R20's context).
KEYS: seen marker, deadlines, outbox
ARGV: tag, ikey, src, turn_json ('' = record nothing), stateless ('1' = live test or anonymous),
      marker_ttl_ms, transcript_cap, history_cap, context_turns (R20: the cap of the turns) ]]
local function ho_route(keys, args)
  local tag, ikey, src, turn = args[1], args[2], args[3], args[4]
  local stateless, ttl = args[5] == '1', tonumber(args[6])
  local transcript_cap, history_cap = tonumber(args[7]), tonumber(args[8])
  local context_turns = tonumber(args[9] or '20')
  local hit = marker_hit(keys[1], src)
  if hit then return hit end
  local now = args[10] or now_ms()
  local d = {src = src, decided_at = now}
  if stateless then
    d.mode, d.version, d.stateless = 'ai', 0, 1
  else
    redis.call('ZADD', 'ho:interactions:' .. tag, 0, ikey)  -- the users list (keys.py)
    local st = load_state(key('state', tag, ikey))
    if lease_expired(tag, ikey, st) then
      st = revert_expired(tag, ikey, st, now, history_cap, transcript_cap)
    end
    if st.mode == 'human' and (st.idle_ms or '') ~= '' then
      extend_lease(tag, ikey, st, now + tonumber(st.idle_ms))
    end
    if st.mode == 'ai' then d.context = take_return_context(tag, ikey, st, context_turns) end
    if turn ~= '' then add_turn(tag, ikey, turn, transcript_cap) end
    d.mode, d.version = st.mode, st.version
    d.cause = st.cause ~= '' and st.cause or nil
    d.human_since = optional_number(st.human_since)
    d.expires_at = optional_number(st.expires_at)
    if st.mode == 'human' and (st.ticket_id or '') ~= '' then
      d.ticket_id, d.queue = st.ticket_id, st.queue
    end
  end
  -- Stored and returned as one encoding: without a status, the answer means `routed`
  -- (reader.py); a replay's marker_hit answers with `replay`.
  local decided = cjson.encode(d)
  redis.call('SET', keys[1], decided, 'PX', ttl)
  return decided
end

--[[ ho_route_many: ho_route for the messages of one shard in a batch, in their order: one
call per shard group instead of one per message (the router's batches).
KEYS: deadlines, outbox, then each message's seen marker
ARGV: tag, marker_ttl_ms, transcript_cap, history_cap, context_turns, then per message:
      ikey, src, turn_json, stateless
Returns each message's ho_route result, in order. ]]
local function ho_route_many(keys, args)
  local tag, ttl, transcript_cap, history_cap = args[1], args[2], args[3], args[4]
  local context_turns = args[5]
  local now = now_ms()  -- one step: one time for all its messages
  local results = {}
  for i = 3, #keys do
    local a = 6 + (i - 3) * 4
    results[#results + 1] = ho_route(
      {keys[i], keys[1], keys[2]},
      {tag, args[a], args[a + 1], args[a + 2], args[a + 3], ttl, transcript_cap, history_cap,
       context_turns, now})
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
      did not come from a Kafka consumer, whose transaction would carry them),
      ticket_json ('' = none: {fields, change, pickup_due}: the ticket a to_human opens),
      resolution_json ('' = none: {ticket_id, expected_version, fields, change}: the ticket a
      to_ai resolves; without one, a to_ai closes the open ticket) ]]
local function ho_apply(keys, args)
  local tag, ikey, src, expected = args[1], args[2], args[3], tonumber(args[4])
  local state_json, change, result = args[5], args[6], args[7]
  local ttl, history_cap = tonumber(args[8]), tonumber(args[9])
  local turn, transcript_cap, to_outbox = args[10], tonumber(args[11]), args[12] == '1'
  local ticket_json, resolution_json = args[13] or '', args[14] or ''
  local hit = marker_hit(keys[1], src)
  if hit then return hit end
  local current = load_state(key('state', tag, ikey))
  if lease_expired(tag, ikey, current) then
    -- The user is back on AI already (R5); make it so, then let the caller decide again.
    current = revert_expired(tag, ikey, current, now_ms(), history_cap, transcript_cap)
    return cjson.encode({status = 'conflict', version = current.version})
  end
  local stored = cjson.decode(result)
  if state_json ~= '' then
    if current.version ~= expected then
      return cjson.encode({status = 'conflict', version = current.version})
    end
    local resolution = resolution_json ~= '' and cjson.decode(resolution_json) or nil
    if resolution then
      local tk = ticket_key(tag, resolution.ticket_id)
      if tonumber(redis.call('HGET', tk, 'version') or '0') ~= resolution.expected_version then
        return cjson.encode({status = 'conflict', version = current.version})
      end
    end
    local new = cjson.decode(state_json)
    local upto = last_turn_id(tag, ikey)  -- before this step's turn (the return notice)
    write_state(tag, ikey, new)
    redis.call('ZADD', 'ho:interactions:' .. tag, 0, ikey)  -- the users list (keys.py)
    push_history(tag, ikey, change, history_cap)
    if turn ~= '' then add_turn(tag, ikey, turn, transcript_cap) end
    if ticket_json ~= '' then
      local t = cjson.decode(ticket_json)
      local fields = {}
      for f, v in pairs(t.fields) do fields[#fields + 1] = f; fields[#fields + 1] = v end
      redis.call('HSET', ticket_key(tag, t.fields.ticket_id), unpack(fields))
      ticket_changed_here(tag, t.fields.ticket_id, t.change)
      redis.call('ZADD', 'ho:tickets:' .. tag, t.fields.created_at, t.fields.ticket_id)
      if t.pickup_due then
        redis.call('ZADD', 'ho:pickup:' .. tag, t.pickup_due, t.fields.ticket_id)
      end
    elseif resolution then
      local fields = {}
      for f, v in pairs(resolution.fields) do fields[#fields + 1] = f; fields[#fields + 1] = v end
      redis.call('HSET', ticket_key(tag, resolution.ticket_id), unpack(fields))
      ticket_changed_here(tag, resolution.ticket_id, resolution.change)
      ticket_ended(tag, resolution.ticket_id)
    elseif new.mode == 'ai' then
      local closed = close_ticket(tag, current.ticket_id, tonumber(new.changed_at), new.actor,
                                  'mode_returned')
      if closed then table.insert(stored.outputs, {'events', ikey, closed}) end
    end
    -- R20, after every write of this step to the ticket (a resolve's note).
    if current.mode == 'human' and new.mode == 'ai' then
      record_return(tag, ikey, current, new.cause, upto)
    end
  end
  stored.src = src
  redis.call('SET', keys[1], cjson.encode(stored), 'PX', ttl)
  if to_outbox then outbox_emit(tag, stored.outputs) end
  stored.status = 'applied'
  return cjson.encode(stored)
end

--[[ ho_ticket_step: one ticket action (claim, assign, transfer, release, resolve), written if
the ticket is still at expected_version and still the open ticket of a human-mode interaction.
Its TicketChanged (and any notice, audit record) goes to the shard outbox in the same step.
KEYS: ticket hash, outbox
ARGV: tag, ticket_id, expected_version, fields_json, change_json, outputs_json,
      queued_score ('' = the ticket is no longer open: drop it from the shard's indexes),
      pickup_due ('' = none), history_cap, transcript_cap, turns_json (the transcript turns of
      the messages it sends the user)
A teammate taking the ticket (status `assigned`) is teammate activity, as a reply is (R19):
the idle expiry moves to a whole timeout from now. ]]
local function ho_ticket_step(keys, args)
  local tag, ticket_id, expected = args[1], args[2], tonumber(args[3])
  local fields_json, change, outputs = args[4], args[5], cjson.decode(args[6])
  local queued_score, pickup_due, history_cap = args[7], args[8], tonumber(args[9])
  local transcript_cap = tonumber(args[10])
  local t = load_hash(keys[1])
  if not t.ticket_id then return cjson.encode({status = 'missing'}) end
  local st = load_state(key('state', tag, t.ikey))
  if lease_expired(tag, t.ikey, st) then
    revert_expired(tag, t.ikey, st, now_ms(), history_cap, transcript_cap)  -- closes the ticket
    return cjson.encode({status = 'conflict'})
  end
  if tonumber(t.version) ~= expected then return cjson.encode({status = 'conflict'}) end
  if st.mode ~= 'human' or st.ticket_id ~= ticket_id then
    -- An open ticket whose interaction is no longer in human mode with it: end it now.
    local closed = close_ticket(tag, ticket_id, now_ms(), 'system:handoff', 'mode_returned')
    if closed then outbox_emit(tag, {{'events', t.ikey, closed}}) end
    return cjson.encode({status = 'conflict'})
  end
  local new = cjson.decode(fields_json)
  local fields = {}
  for f, v in pairs(new) do fields[#fields + 1] = f; fields[#fields + 1] = v end
  redis.call('HSET', keys[1], unpack(fields))
  ticket_changed_here(tag, ticket_id, change)
  if queued_score == '' then
    ticket_ended(tag, ticket_id)
  else
    redis.call('ZADD', 'ho:tickets:' .. tag, queued_score, ticket_id)
    if pickup_due ~= '' then
      redis.call('ZADD', 'ho:pickup:' .. tag, pickup_due, ticket_id)
    else
      redis.call('ZREM', 'ho:pickup:' .. tag, ticket_id)
    end
  end
  if new.queue then redis.call('HSET', key('state', tag, t.ikey), 'queue', new.queue) end
  if new.status == 'assigned' and (st.idle_ms or '') ~= '' then
    extend_lease(tag, t.ikey, st, now_ms() + tonumber(st.idle_ms))
  end
  outbox_emit(tag, outputs)
  for _, turn in ipairs(cjson.decode(args[11])) do add_turn(tag, t.ikey, turn, transcript_cap) end
  return cjson.encode({status = 'applied'})
end

--[[ ho_pickup_fire: a ticket passed its pickup target (R18), announced once. Claiming the
deadline (ZREM) and writing are one step, so two workers never fire one ticket twice.
KEYS: pickup index, outbox
ARGV: tag, ticket_id, expected_version, fields_json, change_json, outputs_json,
      back_to_ai ('1': the AI takes the user back, the ticket closes), reason, history_cap,
      transcript_cap, turns_json (the transcript turns of the messages it sends the user) ]]
local function ho_pickup_fire(keys, args)
  local tag, ticket_id, expected = args[1], args[2], tonumber(args[3])
  local back, reason, history_cap = args[7] == '1', args[8], tonumber(args[9])
  local transcript_cap = tonumber(args[10])
  local tk = ticket_key(tag, ticket_id)
  local t = load_hash(tk)
  -- Changed since the caller read it: the step that changed it also moved or dropped the
  -- deadline; the caller reads again next sweep.
  if t.ticket_id and tonumber(t.version) ~= expected then return 'stale' end
  if redis.call('ZREM', keys[1], ticket_id) == 0 then return 'gone' end
  if t.status ~= 'queued' or t.pickup_overdue == '1' then return 'gone' end
  local st = load_state(key('state', tag, t.ikey))
  if lease_expired(tag, t.ikey, st) then
    revert_expired(tag, t.ikey, st, now_ms(), history_cap, transcript_cap)  -- idle came first
    return 'gone'
  end
  local fields = {}
  for f, v in pairs(cjson.decode(args[4])) do fields[#fields + 1] = f; fields[#fields + 1] = v end
  redis.call('HSET', tk, unpack(fields))
  ticket_changed_here(tag, ticket_id, args[5])
  outbox_emit(tag, cjson.decode(args[6]))
  for _, turn in ipairs(cjson.decode(args[11])) do add_turn(tag, t.ikey, turn, transcript_cap) end
  if back then
    if st.mode == 'human' and st.ticket_id == ticket_id then
      revert_expired(tag, t.ikey, st, now_ms(), history_cap, transcript_cap,
                     __PICKUP_ACTOR__, reason)
    end
  end
  return 'fired'
end

--[[ ho_ticket_notice: tell a queued user their better position (R16), at most once per
min_interval_ms and only when the position improved since the last notice.
KEYS: ticket hash, outbox
ARGV: tag, ticket_id, position, min_interval_ms, outputs_json, turns_json (the transcript
      turns of the messages it sends to the user), transcript_cap ]]
local function ho_ticket_notice(keys, args)
  local position, interval = tonumber(args[3]), tonumber(args[4])
  local t = load_hash(keys[1])
  if t.status ~= 'queued' then return 0 end
  local now = now_ms()
  local last_at, last_pos = tonumber(t.notified_at or ''), tonumber(t.notified_position or '')
  if last_pos and position >= last_pos then return 0 end
  if last_at and now < last_at + interval then return 0 end
  redis.call('HSET', keys[1], 'notified_position', position, 'notified_at', now)
  outbox_emit(args[1], cjson.decode(args[5]))
  for _, turn in ipairs(cjson.decode(args[6])) do
    add_turn(args[1], t.ikey, turn, tonumber(args[7]))
  end
  return 1
end

--[[ ho_queue_put: a queue's settings, versioned, with its audit record in the outbox.
KEYS: the tenant's queue hash (`{queue}` = the settings JSON as given, `{queue}@version`;
ids never contain `@`), its shard's outbox.
ARGV: tag, queue, settings_json, expected_version ('' = any), outputs_json ]]
local function ho_queue_put(keys, args)
  local queue = args[2]
  local version = tonumber(redis.call('HGET', keys[1], queue .. '@version') or '0')
  if args[4] ~= '' and tonumber(args[4]) ~= version then
    return redis.error_reply('VERSION_CONFLICT ' .. version)
  end
  redis.call('HSET', keys[1], queue, args[3], queue .. '@version', version + 1)
  outbox_emit(args[1], cjson.decode(args[5]))
  return version + 1
end

--[[ ho_canned_put: one of a tenant's canned replies stored, replaced or deleted, with its
audit record in the outbox (api/compose.py).
KEYS: the tenant's canned replies hash (id -> reply JSON), its shard's outbox
ARGV: tag, id, reply_json ('' = delete), max_replies, outputs_json ]]
local function ho_canned_put(keys, args)
  local existed = redis.call('HEXISTS', keys[1], args[2]) == 1
  local outcome
  if args[3] == '' then
    if not existed then return 'not_found' end
    redis.call('HDEL', keys[1], args[2])
    outcome = 'deleted'
  else
    if not existed and redis.call('HLEN', keys[1]) >= tonumber(args[4]) then return 'too_many' end
    redis.call('HSET', keys[1], args[2], args[3])
    outcome = existed and 'replaced' or 'created'
  end
  outbox_emit(args[1], cjson.decode(args[5]))
  return outcome
end

--[[ ho_expire_due: revert every interaction of a shard whose lease ran out (timeout worker).
Claiming and reverting are one step, so two workers never revert (nor emit) one expiry twice.
The reverts share outbox entries (REVERTS_PER_ENTRY); the claimed deadlines go in one ZREM.
KEYS: deadlines, outbox
ARGV: tag, limit, history_cap, transcript_cap ]]
local function ho_expire_due(keys, args)
  local tag, limit, history_cap = args[1], tonumber(args[2]), tonumber(args[3])
  local transcript_cap = tonumber(args[4])
  local now = now_ms()
  local due = redis.call('ZRANGE', keys[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  local batch, claimed, reverted = revert_batch(tag, now), {}, 0
  for _, ikey in ipairs(due) do
    local st = load_revert_state(key('state', tag, ikey))
    if lease_expired(tag, ikey, st) then
      revert_expired(tag, ikey, st, now, history_cap, transcript_cap, nil, nil, batch)
      reverted = reverted + 1
      claimed[#claimed + 1] = ikey
    elseif st.mode == 'human' and (st.expires_at or '') ~= '' then
      redis.call('ZADD', keys[1], st.expires_at, ikey)  -- moved forward meanwhile
    else
      claimed[#claimed + 1] = ikey
    end
  end
  flush_reverts(batch)
  for i = 1, #claimed, 1000 do  -- unpack's bound on arguments
    redis.call('ZREM', keys[1], unpack(claimed, i, math.min(i + 999, #claimed)))
  end
  return reverted
end

--[[ ho_human_reply: a teammate's reply to the user (R19): recorded in the transcript, and
activity, like a user message: the idle expiry moves forward in the same step. The marker is
keyed by the OutboundMessage's event_id: the operator API records its desk replies at once
(src api/<event_id>, the message queued in the outbox in this step), and the consumer of
chat.outbound that records replies external desks send there skips them (another src).
KEYS: reply marker, deadlines, outbox
ARGV: tag, ikey, src, turn_json, outputs_json ('' = none, else a JSON array of
      [role, key, value_json]), require_human ('1': refuse when the AI has the user),
      marker_ttl_ms, transcript_cap, history_cap ]]
local function ho_human_reply(keys, args)
  local tag, ikey, src, turn, outputs = args[1], args[2], args[3], args[4], args[5]
  local require_human, ttl = args[6] == '1', tonumber(args[7])
  local transcript_cap, history_cap = tonumber(args[8]), tonumber(args[9])
  local hit = marker_hit(keys[1], src)
  if hit then return hit end
  local now = now_ms()
  local st = load_state(key('state', tag, ikey))
  if lease_expired(tag, ikey, st) then
    st = revert_expired(tag, ikey, st, now, history_cap, transcript_cap)
  end
  if require_human and st.mode ~= 'human' then
    return cjson.encode({status = 'not_in_human_mode', version = st.version})
  end
  local d = {src = src, mode = st.mode, version = st.version}
  if st.mode == 'human' and (st.idle_ms or '') ~= '' then
    d.expires_at = extend_lease(tag, ikey, st, now + tonumber(st.idle_ms))
  end
  add_turn(tag, ikey, turn, transcript_cap)
  if outputs ~= '' then outbox_emit(tag, cjson.decode(outputs)) end
  redis.call('SET', keys[1], cjson.encode(d), 'PX', ttl)
  d.status = 'recorded'
  return cjson.encode(d)
end

--[[ ho_extend: the desk extends the idle expiry (R19): to now + extra_ms (default: the idle
timeout), never earlier than it is. Its audit record is queued in the outbox in this step,
whatever the outcome: `{outcome}` in its JSON becomes the status.
KEYS: deadlines, outbox
ARGV: tag, ikey, extra_ms ('' = the idle timeout), audit_json, history_cap, transcript_cap
Returns status: extended (with expires_at), not_in_human_mode or no_idle_timeout. ]]
local function ho_extend(keys, args)
  local tag, ikey, extra, audit = args[1], args[2], optional_number(args[3]), args[4]
  local history_cap, transcript_cap = tonumber(args[5]), tonumber(args[6])
  local now = now_ms()
  local st = load_state(key('state', tag, ikey))
  if lease_expired(tag, ikey, st) then
    st = revert_expired(tag, ikey, st, now, history_cap, transcript_cap)
  end
  local d = {status = 'extended', version = st.version}
  if st.mode ~= 'human' then
    d.status = 'not_in_human_mode'
  elseif (st.idle_ms or '') == '' then
    d.status = 'no_idle_timeout'
  else
    d.expires_at = extend_lease(tag, ikey, st, now + (extra or tonumber(st.idle_ms)))
  end
  outbox_emit(tag, {{'events', ikey, (string.gsub(audit, '{outcome}', d.status))}})
  return cjson.encode(d)
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

-- The agents list (keys.py): the shard's index names the agent as `tenant:agent`, the part of
-- its hash's key after the tag; `updated_at` is the last Apply or Publish (ms, Redis TIME).
local function index_agent(agent_key, tag)
  local prefix = 'ho:agent:' .. tag .. ':'
  redis.call('ZADD', 'ho:agents:' .. tag, 0, string.sub(agent_key, #prefix + 1))
  redis.call('HSET', agent_key, 'updated_at', now_ms())
end

--[[ ho_agent_apply: a new immutable agent version, announced by an AgentVersionApplied.
KEYS: agent hash, its shard's outbox. ARGV: tag, version_json, event_json, extra_outputs_json ]]
local function ho_agent_apply(keys, args)
  local n = redis.call('HINCRBY', keys[1], 'latest', 1)
  redis.call('HSET', keys[1], 'v' .. n, args[2])
  index_agent(keys[1], args[1])
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
  index_agent(keys[1], args[1])
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
redis.register_function('ho_human_reply', ho_human_reply)
redis.register_function('ho_extend', ho_extend)
redis.register_function('ho_agent_apply', ho_agent_apply)
redis.register_function('ho_ticket_step', ho_ticket_step)
redis.register_function('ho_pickup_fire', ho_pickup_fire)
redis.register_function('ho_ticket_notice', ho_ticket_notice)
redis.register_function('ho_queue_put', ho_queue_put)
redis.register_function('ho_canned_put', ho_canned_put)
redis.register_function('ho_agent_publish', ho_agent_publish)
