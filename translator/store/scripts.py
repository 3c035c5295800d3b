"""The Lua scripts of ``RedisStore`` (:mod:`translator.store.state`): each write, and each read that
must see one state, is one script, atomic on the Redis server.

An execution's keys (``<prefix>wf:<id>`` and its suffixes): the workflow's fields (hash, values JSON),
``:tasks`` (hash: taskId -> record JSON), ``:seq`` (counter), ``:latest`` (hash: reference -> taskId of
its newest record), ``:open`` (set: ids of the records not terminal) and ``:claims`` (hash: taskId ->
the fields a start set on that record, see ``READ``). A record with a claim entry is the record with
those fields set and its ``pollCount`` one higher; every write of a record drops its claim entry.
"""

from __future__ import annotations

from translator.status import WorkflowStatus

# Lifetimes. A running workflow's keys have no TTL. ``ended`` runs in the script that ends a workflow:
# its keys expire in ``ttl`` seconds (never when ttl <= 0), and its plan stops counting it as running.
# ``<plan>:refs`` is a hash: running workflow id -> 1, and '~until' = when the longest-lived ended
# record naming the plan expires (epoch ms, -1: never). The plan (and refs) expire at '~until' once
# no running workflow names it; ``create_workflow`` clears that expiry again. (The plan key is derived
# from the record's ``_plan`` inside the script: the store is one Redis, not a cluster.)
# ``follow`` runs after writes that may come after the end (a late claim, a canceled task, a counter):
# the key takes the remaining time of the workflow's record, or ``ttl`` when the record is gone.
LIFETIME_LUA = """
local function ended(keys, ttl, prefix, wf)
  if ttl > 0 then
    for _, key in ipairs(keys) do redis.call('EXPIRE', key, ttl) end
  end
  local digest = redis.call('HGET', keys[1], '_plan')
  if not digest then return end
  local plan = prefix .. 'plan:' .. cjson.decode(digest)
  local refs = plan .. ':refs'
  redis.call('HDEL', refs, wf)
  local keep = tonumber(redis.call('HGET', refs, '~until') or '0')
  if keep ~= -1 then
    if ttl > 0 then
      local now = redis.call('TIME')
      -- rounded up to the next ms: never before the keys just given ttl
      local expires = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + 1 + ttl * 1000
      keep = math.max(keep, expires)
    else
      keep = -1
    end
    redis.call('HSET', refs, '~until', string.format('%.0f', keep))
  end
  if keep ~= -1 and redis.call('HLEN', refs) == 1 then
    redis.call('PEXPIREAT', plan, string.format('%.0f', keep))
    redis.call('PEXPIREAT', refs, string.format('%.0f', keep))
  end
end

-- An ended workflow runs again (a lifecycle operation): its keys keep no TTL, its plan counts it.
local function reopened(keys, prefix, wf)
  for _, key in ipairs(keys) do redis.call('PERSIST', key) end
  local digest = redis.call('HGET', keys[1], '_plan')
  if not digest then return end
  local plan = prefix .. 'plan:' .. cjson.decode(digest)
  redis.call('HSET', plan .. ':refs', wf, 1)
  redis.call('PERSIST', plan)
  redis.call('PERSIST', plan .. ':refs')
end

local function follow(main, key, ttl)
  local left = redis.call('PTTL', main)
  if left > 0 then
    redis.call('PEXPIRE', key, left)
  elseif left == -2 and ttl > 0 then
    redis.call('EXPIRE', key, ttl)
  end
end

local function batch(command, key, items)  -- one call per 1000 items (unpack's limit)
  for i = 1, #items, 1000 do redis.call(command, key, unpack(items, i, math.min(i + 999, #items))) end
end

local function terminal(status, statuses)
  for s in string.gmatch(statuses, '[^,]+') do
    if status == s then return true end
  end
  return false
end
"""

# Search indexes (:mod:`translator.store.search`), under ``<prefix>idx:``: sorted sets of workflow ids
# scored by startTime (ms): ``all``, ``name:<workflowName>``, ``corr:<correlationId>``,
# ``status:<STATUS>`` and ``status:<STATUS>:name:<workflowName>`` (a status has no ':', so no name
# makes one key mean two things); and ``ends``: one member per ended execution whose keys expire (JSON
# [id, status, name, correlationId]), scored by when they expire. ``trim`` removes what the due ones
# name from the indexes, so an index never outlives its records.
#
# ``index(main, prefix, wf, before)`` must run in every script that writes a workflow's ``status``,
# after the write (and after ``ended`` or a PERSIST, whose TTL it reads): ``before`` is the status
# field as it was before the write (the JSON text from HGET; false for a new record). ``unindex`` runs
# in a script that deletes a workflow's record, before the delete.
TRIM_ON_END = 20  # a script that ends a workflow also trims this many expired index entries
INDEX_LUA = (
    "local TERMINAL_STATUS = {"
    + ", ".join(f"{s.value} = true" for s in WorkflowStatus if s.terminal)
    + "}\n"
    + f"local TRIM_ON_END = {TRIM_ON_END}\n"
    + """
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

local function text(raw)  -- a stored JSON field that is a string, else ''
  if not raw then return '' end
  local value = cjson.decode(raw)
  if type(value) == 'string' then return value end
  return ''
end

local function index(main, prefix, wf, before)
  local raw = redis.call('HMGET', main, 'status', 'workflowName', 'correlationId', 'startTime')
  if raw[1] == before then return end
  local base = prefix .. 'idx:'
  local name, corr = text(raw[2]), text(raw[3])
  if before then
    local old = cjson.decode(before)
    redis.call('ZREM', base .. 'status:' .. old, wf)
    redis.call('ZREM', base .. 'status:' .. old .. ':name:' .. name, wf)
    redis.call('ZREM', base .. 'ends', cjson.encode({wf, old, name, corr}))
  end
  if not raw[1] then return end
  local status = cjson.decode(raw[1])
  local score = string.format('%.0f', tonumber(raw[4] or '0') or 0)
  redis.call('ZADD', base .. 'all', score, wf)  -- also indexes a record older than the indexes
  redis.call('ZADD', base .. 'name:' .. name, score, wf)
  if corr ~= '' then redis.call('ZADD', base .. 'corr:' .. corr, score, wf) end
  redis.call('ZADD', base .. 'status:' .. status, score, wf)
  redis.call('ZADD', base .. 'status:' .. status .. ':name:' .. name, score, wf)
  if TERMINAL_STATUS[status] then
    local left = redis.call('PTTL', main)
    if left > 0 then
      local member = cjson.encode({wf, status, name, corr})
      redis.call('ZADD', base .. 'ends', string.format('%.0f', now_ms() + left), member)
    end
  end
end

local function drop_indexed(base, wf, status, name, corr)
  redis.call('ZREM', base .. 'all', wf)
  redis.call('ZREM', base .. 'name:' .. name, wf)
  if corr ~= '' then redis.call('ZREM', base .. 'corr:' .. corr, wf) end
  redis.call('ZREM', base .. 'status:' .. status, wf)
  redis.call('ZREM', base .. 'status:' .. status .. ':name:' .. name, wf)
  redis.call('ZREM', base .. 'ends', cjson.encode({wf, status, name, corr}))
end

local function unindex(main, prefix, wf)
  local raw = redis.call('HMGET', main, 'status', 'workflowName', 'correlationId')
  if raw[1] then drop_indexed(prefix .. 'idx:', wf, cjson.decode(raw[1]), text(raw[2]), text(raw[3])) end
end

-- Forget the index entries of at most ``limit`` ended executions whose keys are gone by now (one
-- whose record lives longer than registered is registered again). Returns how many were due.
local function trim(prefix, limit)
  local base = prefix .. 'idx:'
  local now = now_ms()
  local due = redis.call('ZRANGEBYSCORE', base .. 'ends', '-inf', string.format('%.0f', now),
    'LIMIT', 0, limit)
  for _, member in ipairs(due) do
    local e = cjson.decode(member)
    local left = redis.call('PTTL', prefix .. 'wf:' .. e[1])
    if left == -2 then
      drop_indexed(base, e[1], e[2], e[3], e[4])
    elseif left == -1 then
      redis.call('ZREM', base .. 'ends', member)  -- kept for good now
    else
      redis.call('ZADD', base .. 'ends', string.format('%.0f', now + left), member)
    end
  end
  return #due
end
"""
)

# KEYS: workflow, tasks, seq, latest, open, claims. ARGV: terminal statuses, ttl, prefix, workflow id,
# then field/value pairs.
FINISH = (
    LIFETIME_LUA
    + INDEX_LUA
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or terminal(cjson.decode(status), ARGV[1]) then return 0 end
for i = 5, #ARGV - 1, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
ended(KEYS, tonumber(ARGV[2]), ARGV[3], ARGV[4])
index(KEYS[1], ARGV[3], ARGV[4], status)
trim(ARGV[3], TRIM_ON_END)
return 1
"""
)

# KEYS: workflow, tasks, seq, latest, open, plan, plan refs, deadlines. ARGV: the plan's text, then a
# JSON object of flat lists: "id" (the workflow id), "fields" (field, JSON value, ...), "records"
# (taskId, JSON, ...), "latest" (name, taskId, ...), "open" (ids), "deadlines" (due, member, ...), and
# "seq" (the highest seq of the records), "prefix" (the store's key prefix). 0 (nothing written) when
# the workflow id is taken.
CREATE = (
    LIFETIME_LUA
    + INDEX_LUA
    + """
local a = cjson.decode(ARGV[2])
if redis.call('HSETNX', KEYS[1], 'workflowId', cjson.encode(a.id)) == 0 then return 0 end
batch('HSET', KEYS[1], a.fields)  -- workflowId included, as the caller encoded it
redis.call('SET', KEYS[6], ARGV[1])  -- no TTL while a workflow runs it (SET clears an ended one's)
redis.call('HSET', KEYS[7], a.id, 1)
redis.call('PERSIST', KEYS[7])
batch('HSET', KEYS[2], a.records)
batch('HSET', KEYS[4], a.latest)
batch('SADD', KEYS[5], a.open)
batch('ZADD', KEYS[8], a.deadlines)
if #a.records > 0 then redis.call('SET', KEYS[3], a.seq) end
index(KEYS[1], a.prefix, a.id, false)
return 1
"""
)

DEADLINES_LUA = """
local function deadlines(key, adds, removes)
  for _, member in ipairs(cjson.decode(removes)) do redis.call('ZREM', key, member) end
  for _, pair in ipairs(cjson.decode(adds)) do redis.call('ZADD', key, pair[2], pair[1]) end
end
"""

# KEYS: tasks, deadlines, workflow, latest, open, claims. ARGV: taskId, task JSON, takeover, deadlines
# to add (JSON [[member, due], ...]) and to drop (JSON [member, ...]), ttl, then the names the record is
# the newest of.
CLAIM = (
    DEADLINES_LUA
    + LIFETIME_LUA
    + """
local current = redis.call('HGET', KEYS[1], ARGV[1])
local started = redis.call('HGET', KEYS[6], ARGV[1])
local status = 'SCHEDULED'
if started then
  status = cjson.decode(started)['status']
elseif current then
  status = cjson.decode(current)['status']
end
if status == 'SCHEDULED' or (status == 'IN_PROGRESS' and ARGV[3] == '1') then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HDEL', KEYS[6], ARGV[1])
  redis.call('SADD', KEYS[5], ARGV[1])
  for i = 7, #ARGV do redis.call('HSET', KEYS[4], ARGV[i], ARGV[1]) end
  deadlines(KEYS[2], ARGV[4], ARGV[5])
  for i = 1, 5 do
    if i ~= 2 and i ~= 3 then follow(KEYS[3], KEYS[i], tonumber(ARGV[6])) end
  end
  return false
end
return status
"""
)

# KEYS: tasks, workflow, seq, deadlines, latest, open, claims. ARGV: terminal statuses, prefix, workflow
# id, then a JSON object: "expect" ([taskId, status, startTime]: the record must still have them),
# "rev" (the revision the change was decided in), "ttl" (of the keys once ended), "records" and
# "created" (how many of the ARGV after the object are records written, then records written only if
# absent: taskId, JSON, ...; passed as they are, not inside the object, so no JSON text is escaped and
# decoded twice), then flat lists:
# "opened" and "closed" (ids now open, not open), "latest" (name, taskId, ...), "forget" (names),
# "remove" (ids), "add" (due, member, ...) and "drop" (members) of deadlines, "update" and "finish"
# (field, JSON value, ...: set, and set to end the workflow); and "seq" (the highest seq written: the
# counter is raised to it); "reopen" (apply only to an ended workflow, which runs again) and "clear" (every
# task record removed first, the counter set to "seq"). Returns {applied, ended, conflict}.
APPLY = (
    LIFETIME_LUA
    + INDEX_LUA
    + """
local wstatus, rev = unpack(redis.call('HMGET', KEYS[2], 'status', '_rev'))
local a = cjson.decode(ARGV[4])
if not wstatus or terminal(cjson.decode(wstatus), ARGV[1]) ~= (a.reopen == true) then return {0, 0, 0} end
local records, created = {}, {}
for i = 1, a.records do records[i] = ARGV[4 + i] end
for i = 1, a.created do created[i] = ARGV[4 + a.records + i] end
rev = tonumber(rev or '0')
if a.rev and a.rev ~= rev then return {0, 0, 1} end
if a.expect then
  local current = redis.call('HGET', KEYS[1], a.expect[1])
  if not current then return {0, 0, 0} end
  local record = cjson.decode(redis.call('HGET', KEYS[7], a.expect[1]) or current)
  if record['status'] ~= a.expect[2] or string.format('%d', record['startTime'] or 0) ~= a.expect[3] then
    return {0, 0, 0}
  end
end
if a.clear then
  redis.call('DEL', KEYS[1], KEYS[5], KEYS[6], KEYS[7])
  redis.call('SET', KEYS[3], a.seq)
end
batch('HSET', KEYS[1], records)
for i = 1, #created, 2 do redis.call('HSETNX', KEYS[1], created[i], created[i + 1]) end
batch('SADD', KEYS[6], a.opened)
batch('SREM', KEYS[6], a.closed)
batch('HSET', KEYS[5], a.latest)
batch('HDEL', KEYS[5], a.forget)
batch('HDEL', KEYS[1], a.remove)
batch('SREM', KEYS[6], a.remove)
local written = {}  -- records written or removed lose their claim entries
for i = 1, #records, 2 do table.insert(written, records[i]) end
for _, id in ipairs(a.remove) do table.insert(written, id) end
batch('HDEL', KEYS[7], written)
batch('ZREM', KEYS[4], a.drop)
batch('ZADD', KEYS[4], a.add)
redis.call('HSET', KEYS[2], '_rev', rev + 1)
if a.seq > tonumber(redis.call('GET', KEYS[3]) or '0') then redis.call('SET', KEYS[3], a.seq) end
if a.reopen then unindex(KEYS[2], ARGV[2], ARGV[3]) end  -- a rerun may change its correlationId
batch('HSET', KEYS[2], a.update)
-- after update: a restart may give it another plan (``_plan``)
if a.reopen then reopened({KEYS[2], KEYS[1], KEYS[3], KEYS[5], KEYS[6], KEYS[7]}, ARGV[2], ARGV[3]) end
if a.finish then
  batch('HSET', KEYS[2], a.finish)
  ended({KEYS[2], KEYS[1], KEYS[3], KEYS[5], KEYS[6], KEYS[7]}, a.ttl, ARGV[2], ARGV[3])
  index(KEYS[2], ARGV[2], ARGV[3], wstatus)
  trim(ARGV[2], TRIM_ON_END)
  return {1, 1, 0}
end
if #a.update > 0 then index(KEYS[2], ARGV[2], ARGV[3], wstatus) end
return {1, 0, 0}
"""
)

# The start of an attempt decided before its record is read (``state.Claim``): written only if the
# workflow runs the plan the start was computed for, and the record exists, has no claim entry and no
# ``workflowTask`` (a task planned at run time), and is SCHEDULED and due by ``start + tolerance``, or
# IN_PROGRESS and taken over. Then, as ``CLAIM`` would: the claim entry (the fields it sets, JSON
# from the caller), the record open and the newest of its names, its wake and poll deadlines dropped
# (their token: its scheduledTime), its response deadline registered (due after responseTimeoutSeconds
# plus its callbackAfterSeconds). Records are read, never rewritten here.
START_LUA = """
local function integer(value)  -- a JSON number as Python's int() takes it; nil for any other value
  if value == nil or value == cjson.null then return 0 end
  if type(value) ~= 'number' then return nil end
  if value < 0 then return math.ceil(value) end
  return math.floor(value)
end

local function start(a)
  local wstatus, plan = unpack(redis.call('HMGET', KEYS[1], 'status', '_plan'))
  if plan ~= a.plan or not wstatus or terminal(cjson.decode(wstatus), a.terminal) then return 0 end
  local current = redis.call('HGET', KEYS[2], a.id)
  if not current or redis.call('HEXISTS', KEYS[5], a.id) == 1 then return 0 end
  local record = cjson.decode(current)
  local task = record['workflowTask']
  if task ~= nil and task ~= cjson.null then return 0 end
  local scheduled, callback = record['scheduledTime'], integer(record['callbackAfterSeconds'])
  if type(scheduled) ~= 'number' or callback == nil then return 0 end
  scheduled = integer(scheduled)
  if record['status'] == 'SCHEDULED' then
    if scheduled + callback * 1000 - a.start > a.tolerance then return 0 end
  elseif record['status'] ~= 'IN_PROGRESS' or not a.takeover then
    return 0
  end
  redis.call('HSET', KEYS[5], a.id, a.entry)
  redis.call('SADD', KEYS[4], a.id)
  redis.call('HSET', KEYS[6], a.ref, a.id)
  local iteration = record['iteration']
  if a.base and type(iteration) == 'number' and iteration ~= 0 then
    redis.call('HSET', KEYS[6], a.base, a.id)
  end
  local token = string.format('%d', scheduled)
  redis.call('ZREM', KEYS[7], a.wake .. token .. a.tail)
  if a.poll then redis.call('ZREM', KEYS[7], a.poll .. token .. a.tail) end
  if a.response then
    local due = a.start + (a.response[2] + callback) * 1000
    redis.call('ZADD', KEYS[7], string.format('%d', due), a.response[1])
  end
  return 1
end
"""

# One consistent read of an execution, and with a start (``START_LUA``) the start of an attempt in the
# same step. KEYS: workflow, tasks, seq, open, claims, latest, deadlines. ARGV: ttl, the most records
# read all at once, the number of ids asked for, the ids, then optionally the start, a JSON object: "id"
# (its taskId), "plan" (the plan digest, JSON), "takeover", "start" and "tolerance" (ms), "entry" (the
# claim entry, JSON), "terminal" (the terminal statuses), "wake" and "poll" (absent: no poll deadline)
# (the members of those deadlines before their token), "tail" (after it), "response" ([member,
# responseTimeoutSeconds], absent: none), "ref" and "base" (the record's reference, and without
# ``__<iteration>`` if different). Returns the fields (names and JSON values, one per line), the open
# ids, the records found (JSON, one per line), the claim entries of the ids read (flat id/entry pairs;
# all as before the start), a reserved seq, started (1/0), complete (1: every record was read). (JSON
# written by ``json.dumps`` has no raw newline: one line per text makes the reply a few strings to
# parse, not dozens.)
READ = (
    LIFETIME_LUA
    + START_LUA
    + """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {'', {}, '', {}, 0, 0, 0} end
local seq = redis.call('INCR', KEYS[3])
follow(KEYS[1], KEYS[3], tonumber(ARGV[1]))
local open = redis.call('SMEMBERS', KEYS[4])
local records, claims, complete = {}, {}, 0
local asked = tonumber(ARGV[3])
if redis.call('HLEN', KEYS[2]) <= tonumber(ARGV[2]) then
  records = redis.call('HVALS', KEYS[2])
  claims = redis.call('HGETALL', KEYS[5])
  complete = 1
else
  local ids = {}
  for _, id in ipairs(open) do table.insert(ids, id) end
  for i = 4, 3 + asked do table.insert(ids, ARGV[i]) end
  if #ids > 0 then
    for _, record in ipairs(redis.call('HMGET', KEYS[2], unpack(ids))) do
      if record then table.insert(records, record) end
    end
    for i, entry in ipairs(redis.call('HMGET', KEYS[5], unpack(ids))) do
      if entry then
        table.insert(claims, ids[i])
        table.insert(claims, entry)
      end
    end
  end
end
local started = 0
if #ARGV > 3 + asked then started = start(cjson.decode(ARGV[4 + asked])) end
return {table.concat(fields, '\\n'), open, table.concat(records, '\\n'), claims, seq, started, complete}
"""
)

# KEYS: workflow, tasks, claims. ARGV: '1' to read the workflow's fields too. Returns the fields (names
# and JSON values, one per line: see ``READ``; '' when there are none or unread), every record (JSON,
# one per line) and the claim entries (flat id/entry pairs).
VIEW = """
local fields = ''
if ARGV[1] == '1' then fields = table.concat(redis.call('HGETALL', KEYS[1]), '\\n') end
local records = table.concat(redis.call('HVALS', KEYS[2]), '\\n')
return {fields, records, redis.call('HGETALL', KEYS[3])}
"""

# KEYS: latest, tasks, claims. ARGV: references. Their newest records, as [reference, JSON, claim
# entry or false] triples.
LATEST = """
local found = {}
if #ARGV == 0 then return found end
local ids = redis.call('HMGET', KEYS[1], unpack(ARGV))
for i, id in ipairs(ids) do
  if id then
    local record = redis.call('HGET', KEYS[2], id)
    if record then table.insert(found, {ARGV[i], record, redis.call('HGET', KEYS[3], id)}) end
  end
end
return found
"""

# KEYS: workflow, key (a hash). ARGV: ttl, then field/value pairs.
HSET = (
    LIFETIME_LUA
    + """
for i = 2, #ARGV - 1, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
follow(KEYS[1], KEYS[2], tonumber(ARGV[1]))
return 1
"""
)

# KEYS: workflow, seq. ARGV: ttl.
INCR = (
    LIFETIME_LUA
    + """
local seq = redis.call('INCR', KEYS[2])
follow(KEYS[1], KEYS[2], tonumber(ARGV[1]))
return seq
"""
)

# KEYS: workflow. ARGV: prefix, workflow id, then field/value pairs, written only if the record exists
# (it keeps its TTL).
UPDATE = (
    INDEX_LUA
    + """
local before = redis.call('HGET', KEYS[1], 'status')
if not before then return 0 end
for i = 3, #ARGV - 1, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
index(KEYS[1], ARGV[1], ARGV[2], before)
return 1
"""
)

# KEYS: workflow. ARGV: prefix, workflow id. The execution's index entries removed (before its keys are
# deleted).
UNINDEX = (
    INDEX_LUA
    + """
unindex(KEYS[1], ARGV[1], ARGV[2])
return 1
"""
)

CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], member) end
return due
"""

# The executions a search finds (:mod:`translator.store.search`), one page of them. ARGV: prefix, then
# a JSON object: "keys" (the index keys to read, under ``<prefix>idx:``; an execution is in at most
# one of them) or "ids" (the workflow ids to look at), "min" and "max" (startTime bounds, inclusive,
# as ZRANGEBYSCORE takes them), "filter" (absent: none; else sets, as JSON objects whose keys are the
# accepted values: "status", "name", "corr", "version" (the stored JSON text)), "desc" (newest first),
# "offset" and "count" (-1: every one), "fields" (the fields returned), "trim" (how many expired
# index entries to forget first). Returns {total, {id, field values (JSON or false)...}, ...}. An
# index member whose record is gone is removed from the keys read and ``all``, and the page read again.
SEARCH = (
    INDEX_LUA
    + """
local prefix = ARGV[1]
local a = cjson.decode(ARGV[2])
local base = prefix .. 'idx:'
trim(prefix, a.trim)
local filter = a.filter

local function alive(id, score)  -- the score if the record exists and passes the filter, false if gone
  local raw = redis.call('HMGET', prefix .. 'wf:' .. id, 'status', 'workflowName', 'correlationId',
    'workflowVersion', 'startTime')
  if not raw[1] then return false end
  if a.ids then
    score = tonumber(raw[5] or '0') or 0
    if (a.min ~= '-inf' and score < tonumber(a.min)) or (a.max ~= '+inf' and score > tonumber(a.max)) then
      return nil
    end
  end
  if filter then
    if filter.status and not filter.status[cjson.decode(raw[1])] then return nil end
    if filter.name and not filter.name[text(raw[2])] then return nil end
    if filter.corr and not filter.corr[text(raw[3])] then return nil end
    if filter.version and not filter.version[raw[4] or ''] then return nil end
  end
  return score
end

local function forget(id)
  redis.call('ZREM', base .. 'all', id)
  for _, key in ipairs(a.keys or {}) do redis.call('ZREM', base .. key, id) end
end

local function before(x, y)
  if x[2] ~= y[2] then
    if a.desc then return x[2] > y[2] end
    return x[2] < y[2]
  end
  if a.desc then return x[1] > y[1] end
  return x[1] < y[1]
end

local function range(key, limit)  -- {id, score} pairs of one key within the bounds, in order
  local args
  if a.desc then args = {'ZREVRANGEBYSCORE', base .. key, a.max, a.min, 'WITHSCORES'}
  else args = {'ZRANGEBYSCORE', base .. key, a.min, a.max, 'WITHSCORES'} end
  if limit then
    table.insert(args, 'LIMIT')
    table.insert(args, 0)
    table.insert(args, limit)
  end
  local flat = redis.call(unpack(args))
  local pairs_ = {}
  for i = 1, #flat, 2 do table.insert(pairs_, {flat[i], tonumber(flat[i + 1])}) end
  return pairs_
end

for _ = 1, 10 do
  local total, found = 0, {}
  local dead = false
  if a.ids or filter then
    local candidates = {}
    if a.ids then
      for _, id in ipairs(a.ids) do table.insert(candidates, {id, 0}) end
    else
      for _, key in ipairs(a.keys) do
        for _, pair in ipairs(range(key, nil)) do table.insert(candidates, pair) end
      end
    end
    for _, pair in ipairs(candidates) do
      local score = alive(pair[1], pair[2])
      if score == false then
        if not a.ids then forget(pair[1]) end
      elseif score ~= nil then
        table.insert(found, {pair[1], score})
      end
    end
    total = #found
  else
    local want = nil
    if a.count >= 0 then want = a.offset + a.count end
    for _, key in ipairs(a.keys) do
      total = total + redis.call('ZCOUNT', base .. key, a.min, a.max)
      if want ~= 0 then
        for _, pair in ipairs(range(key, want)) do table.insert(found, pair) end
      end
    end
  end
  table.sort(found, before)
  local last = #found
  if a.count >= 0 then last = math.min(last, a.offset + a.count) end
  local rows = {total}
  for i = a.offset + 1, last do
    local id = found[i][1]
    local values = redis.call('HMGET', prefix .. 'wf:' .. id, 'status', unpack(a.fields))
    if not values[1] then
      forget(id)
      dead = true
    else
      table.remove(values, 1)
      table.insert(rows, {id, values})
    end
  end
  if not dead or a.ids then return rows end
end
return redis.error_reply('the search indexes changed too often while being read')
"""
)
