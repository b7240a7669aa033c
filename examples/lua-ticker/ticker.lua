-- ticker: the registered singleton that moves prices and broadcasts them.
--
-- Every tick (args.interval, 10ms by default) each price takes a small
-- random step, the tick is encoded once (one json.encode), and the same
-- string goes to every subscriber's client pid as `ws.send`: per-tick Lua
-- work is one encode plus one send per subscriber; the relay does the rest.
--
-- Subscriptions map handler pid -> client pid. A handler subscribes with
-- `subscribe {client_pid}` (it gets a snapshot at once) and leaves with
-- `unsubscribe`; the ticker monitors each handler and drops its
-- subscription on EXIT, so a dead handler never leaks one.
--
-- `seq` is a tick clock: it starts at unix_ms / interval and rises by one
-- per tick, so after a restart it continues instead of starting at zero.
--
-- Resume: the last `args.history` ticks (3000) stay in a ring. A subscriber
-- that gives `since` (the last seq its client saw) gets every tick after it
-- in one `ws.send {type, frames}` (one message each, never conflated), then
-- live ticks; when the ring does not reach back to since + 1 (or since is
-- ahead of this ticker) it gets `{"type":"reset",...}` and a snapshot.

local json = require("json")
local time = require("time")
local logger = require("logger")

local NAME = "ticker"

local SYMBOLS = { "BTC-USD", "ETH-USD", "SOL-USD" }
local START_PRICES = { 43000.0, 2300.0, 100.0 }

-- Unix time in ms, whether time.now() gives a number or a time value.
local function now_ms()
  local t = time.now()
  if type(t) == "number" then return math.floor(t) end
  return t:unix_nano() // 1000000
end

-- "10ms", "1s", "1.5s" or a number of ms -> integer ms (at least 1).
local function interval_ms(d)
  if type(d) == "number" then return math.max(1, math.floor(d)) end
  local n, unit = tostring(d):match("^%s*([%d%.]+)%s*(%a*)%s*$")
  n = tonumber(n)
  if not n then return 10 end
  local scale = ({ ms = 1, s = 1000, m = 60000, [""] = 1 })[unit] or 1
  return math.max(1, math.floor(n * scale))
end

local function new_state(interval, history)
  local prices = {}
  for i, p in ipairs(START_PRICES) do prices[i] = p end
  return {
    prices = prices,
    seq = now_ms() // interval,
    subs = {},  -- handler pid -> client pid
    count = 0,
    ring = {},  -- seq -> encoded tick, for the last `history` seqs
    history = history,
  }
end

-- +-0.05% per tick, never below a cent.
local function step(state)
  for i, p in ipairs(state.prices) do
    local change = (math.random() - 0.5) * 0.001
    state.prices[i] = math.max(p * (1 + change), 0.01)
  end
end

-- The tick as one ws.send payload, encoded once.
local function frame(state)
  local ms = now_ms()
  local data = {}
  for i, symbol in ipairs(SYMBOLS) do
    data[i] = {
      symbol = symbol,
      price = math.floor(state.prices[i] * 100 + 0.5) / 100,
      timestamp = ms // 1000,
    }
  end
  local text = json.encode({ type = "ticker", seq = state.seq, sent_at_ms = ms, data = data })
  return { type = "text", data = text }
end

local function reset(state, client, since)
  process.send(client, "ws.send", { type = "text", data = json.encode({
    type = "reset", reason = "beyond_window", since = since, seq = state.seq }) })
  process.send(client, "ws.send", frame(state))
end

-- The ticks after `since` from the ring, or a reset and a snapshot.
local function resume(state, client, since)
  local oldest = state.seq - state.history + 1
  if since > state.seq or since + 1 < oldest or (since < state.seq and state.ring[since + 1] == nil) then
    return reset(state, client, since)
  end
  local frames = {}
  for seq = since + 1, state.seq do frames[#frames + 1] = state.ring[seq] end
  if #frames > 0 then process.send(client, "ws.send", { type = "text", frames = frames }) end
end

local function subscribe(state, handler, payload)
  local client = type(payload) == "table" and payload.client_pid or nil
  if type(client) ~= "string" or client == "" then
    logger:warn("subscribe without a valid client_pid", { from = handler })
    return
  end
  local since = type(payload.since) == "number" and math.tointeger(payload.since) or nil
  if since then
    resume(state, client, since)
  else
    process.send(client, "ws.send", frame(state))
  end
  if state.subs[handler] == nil then
    state.count = state.count + 1
    process.monitor(handler)
  end
  state.subs[handler] = client
end

local function unsubscribe(state, handler)
  if state.subs[handler] ~= nil then
    state.subs[handler] = nil
    state.count = state.count - 1
    process.demonitor(handler)
  end
end

local function tick(state)
  step(state)
  state.seq = state.seq + 1
  local f = frame(state)
  state.ring[state.seq] = f.data
  state.ring[state.seq - state.history] = nil
  for _, client in pairs(state.subs) do
    -- A dead or full client is the relay's business; its handler's EXIT
    -- or unsubscribe removes the subscription.
    process.send(client, "ws.send", f)
  end
end

local function main(args)
  local interval = interval_ms(args and args.interval or "10ms")
  local history = args and type(args.history) == "number" and math.tointeger(args.history) or 3000
  history = math.max(1, history)
  local ok, err = process.registry.register(NAME)
  if not ok then return nil, "cannot register " .. NAME .. ": " .. tostring(err) end

  local state = new_state(interval, history)
  local ticker, terr = time.ticker(interval)
  if not ticker then return nil, "ticker: " .. tostring(terr) end
  local ticks = ticker:response()
  local inbox = process.inbox()
  local events = process.events()
  logger:info("ticker started", { pid = tostring(process.pid()), interval_ms = interval })

  while true do
    local r = channel.select({
      ticks:case_receive(),
      inbox:case_receive(),
      events:case_receive(),
    })
    if r.channel == ticks then
      tick(state)
    elseif r.channel == inbox then
      local msg = r.value
      local from = msg:from() and tostring(msg:from())
      local topic = msg:topic()
      if from and topic == "subscribe" then
        subscribe(state, from, msg:payload():data())
      elseif from and topic == "unsubscribe" then
        unsubscribe(state, from)
      end
    elseif r.channel == events then
      local ev = r.value
      if ev and ev.kind == process.event.EXIT then
        unsubscribe(state, tostring(ev.from))
      end
    end
  end
end

return { main = main }
