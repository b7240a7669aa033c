-- The Lua half of rippy's modules: `process`, `channel`, `time`, `require`.
-- Runs once per state with the Rust `rt` table; waiting calls yield
-- ("rippy:wait", {source ids}) to the process driver, which resumes with
-- (id, value) once one of those sources has something.
local rt = ...
local yield, pack, unpack = coroutine.yield, table.pack, table.unpack
local setmetatable, type, error, ipairs, tostring = setmetatable, type, error, ipairs, tostring
local INBOX, EVENTS = 1, 2

-- A waiting call made inside a coroutine the code created itself passes
-- through that coroutine's resume up to the driver and back, so
-- `inbox:receive()` works at any coroutine depth.
local raw_resume, raw_status, raw_create = coroutine.resume, coroutine.status, coroutine.create
local requests = { ["rippy:wait"] = true, ["rippy:timer"] = true, ["rippy:cancel"] = true }
local function pass(co, ok, ...)
  if ok and requests[(...)] and raw_status(co) == "suspended" then
    return pass(co, raw_resume(co, yield(...)))
  end
  return ok, ...
end
coroutine.resume = function(co, ...) return pass(co, raw_resume(co, ...)) end
coroutine.wrap = function(f)
  local co = raw_create(f)
  local function unwrap(ok, ...)
    if not ok then error((...), 0) end
    return ...
  end
  return function(...) return unwrap(coroutine.resume(co, ...)) end
end

local Channel = {}
Channel.__index = Channel
local external = {} -- source id -> channel fed by the driver

local function new_channel(ext)
  return setmetatable({ buf = {}, head = 1, tail = 0, closed = false, ext = ext }, Channel)
end
local function pop(ch)
  if ch.head <= ch.tail then
    local v = ch.buf[ch.head]
    ch.buf[ch.head] = nil
    ch.head = ch.head + 1
    return true, v
  end
  return false
end
local function push(ch, v)
  ch.tail = ch.tail + 1
  ch.buf[ch.tail] = v
end

local Payload = {}
Payload.__index = Payload
function Payload:data() return self.value end
local Message = {}
Message.__index = Message
function Message:topic() return self.t end
function Message:from() return self.f end
function Message:payload() return setmetatable({ value = self.d }, Payload) end

local function deliver(id, raw)
  local ch = external[id]
  if not ch then return end
  if id == INBOX then raw = setmetatable({ t = raw.topic, f = raw.from, d = raw.data }, Message) end
  push(ch, raw)
end

local function select(cases)
  while true do
    local ids = {}
    for _, c in ipairs(cases) do
      local ch = c.channel
      local ok, v = pop(ch)
      if ok then return { channel = ch, value = v, ok = true } end
      if ch.closed then return { channel = ch, value = nil, ok = false } end
      if ch.ext then ids[#ids + 1] = ch.ext end
    end
    if cases.default then return { default = true, ok = false } end
    if #ids == 0 then error("channel.select: no case can become ready (deadlock)", 2) end
    deliver(yield("rippy:wait", ids))
  end
end

function Channel:send(v)
  if self.closed then error("send on a closed channel", 2) end
  push(self, v)
  return true
end
function Channel:close() self.closed = true end
function Channel:case_receive() return { channel = self } end
function Channel:receive()
  local r = select({ { channel = self } })
  return r.value, r.ok
end

channel = {
  new = function(_size) return new_channel(nil) end,
  select = select,
}

local inbox = new_channel(INBOX)
local events = new_channel(EVENTS)
external[INBOX], external[EVENTS] = inbox, events

local function after(d)
  local ms, err = rt.ms(d)
  if not ms then return nil, err end
  local id = yield("rippy:timer", ms, false)
  local ch = new_channel(id)
  external[id] = ch
  return ch
end

local Ticker = {}
Ticker.__index = Ticker
function Ticker:response() return self.ch end
function Ticker:channel() return self.ch end
function Ticker:stop()
  yield("rippy:cancel", self.ch.ext)
  external[self.ch.ext] = nil
  self.ch.closed = true
end

local time = {
  now = function() return rt.now() end,
  after = after,
  sleep = function(d)
    local ch, err = after(d)
    if not ch then return nil, err end
    ch:receive()
    external[ch.ext] = nil
    return true
  end,
  ticker = function(d)
    local ms, err = rt.ms(d)
    if not ms then return nil, err end
    if ms <= 0 then return nil, "ticker: duration must be positive" end
    local id = yield("rippy:timer", ms, true)
    local ch = new_channel(id)
    external[id] = ch
    return setmetatable({ ch = ch }, Ticker)
  end,
}

process = {
  pid = rt.pid,
  send = rt.send,
  spawn = function(entry, host, ...) return rt.spawn(false, entry, host, ...) end,
  spawn_monitored = function(entry, host, ...) return rt.spawn(true, entry, host, ...) end,
  monitor = function(pid) return rt.monitor(tostring(pid), true) end,
  demonitor = function(pid) return rt.monitor(tostring(pid), false) end,
  terminate = function(pid) return rt.terminate(tostring(pid)) end,
  inbox = function() return inbox end,
  events = function() return events end,
  event = { EXIT = "EXIT" },
  registry = { register = rt.register, lookup = rt.lookup },
}

-- security: actors as objects with :id() and :meta()
local Actor = {}
Actor.__index = Actor
function Actor:id() return self._id end
function Actor:meta() return self._meta or {} end
local function actor(raw)
  if raw == nil then return nil end
  return setmetatable({ _id = raw.id, _meta = raw.meta }, Actor)
end
local function raw_actor(a)
  if getmetatable(a) == Actor then return { id = a._id, meta = a._meta or {} } end
  return a
end
-- policies and scopes: a scope is the list of policy ids a token carries
local Policy = {}
Policy.__index = Policy
function Policy:id() return self._id end
local Scope = {}
Scope.__index = Scope
function Scope:with(p)
  local ids = { table.unpack(self._ids) }
  ids[#ids + 1] = getmetatable(p) == Policy and p._id or p
  return setmetatable({ _ids = ids }, Scope)
end
function Scope:policies() return { table.unpack(self._ids) } end
local function new_scope(policies)
  local ids = {}
  for _, p in ipairs(policies or {}) do
    ids[#ids + 1] = getmetatable(p) == Policy and p._id or p
  end
  return setmetatable({ _ids = ids }, Scope)
end
local function raw_scope(s)
  if getmetatable(s) == Scope then return s._ids end
  if getmetatable(s) == Policy then return { s._id } end
  return s
end
local security
local sec = rt.modules.security
if sec then
  security = {
    actor = function() return actor(sec.actor()) end,
    new_actor = function(id, meta) return actor({ id = id, meta = meta or {} }) end,
    policy = function(id)
      if type(id) ~= "string" or not id:match("^[%w_.-]+:[%w_.-]+$") then
        return nil, "policy: expected an entry id like app:name, got " .. tostring(id)
      end
      return setmetatable({ _id = id }, Policy)
    end,
    new_scope = new_scope,
    can = sec.can,
    token_store = function(id)
      local s, err = sec.token_store(id)
      if not s then return nil, err end
      return {
        create = function(_, a, scope, opts) return s:create(raw_actor(a), raw_scope(scope), opts) end,
        validate = function(_, token)
          local a, scope, err2 = s:validate(token)
          if not a then return nil, nil, err2 end
          return actor(a), scope
        end,
        revoke = function(_, token) return s:revoke(token) end,
        close = function() return true end,
      }
    end,
  }
end

local modules = {
  -- an unlisted module is absent here, so require names it as undeclared
  json = rt.modules.json, crypto = rt.modules.crypto, logger = rt.modules.logger,
  sql = rt.modules.sql, store = rt.modules.store, security = security, time = time,
  http = rt.modules.http, process = process, channel = channel,
}
local free = { process = true, channel = true }
local known = {
  json = true, logger = true, time = true, crypto = true, sql = true, store = true,
  security = true, http = true, process = true, channel = true,
}
require = function(name)
  local m = modules[name]
  if m ~= nil and (free[name] or rt.declared[name]) then return m end
  if not known[name] then error(("unknown module %q"):format(tostring(name)), 2) end
  error(rt.undeclared(name), 2)
end
