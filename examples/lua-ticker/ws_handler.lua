-- ws_handler: one per WebSocket connection, spawned by ws_ticker.
--
-- On `ws.join` it greets the client and subscribes the client pid to the
-- registered `ticker`, which it monitors: if the ticker dies, the handler
-- subscribes again as soon as the restarted ticker has registered its name,
-- so clients keep their stream without reconnecting. `{"type":"ping"}` is
-- answered with `{"type":"pong"}`; anything else is ignored. `ws.leave`
-- unsubscribes and ends the handler.
--
-- It runs as the connecting user (its spawner's identity): looking up
-- `ticker` needs `process.send` on `ticker` in the user's scope. A denial
-- ends the handler with that error (the relay closes the socket with 1011),
-- never a silent retry loop.

local json = require("json")
local time = require("time")

local TICKER = "ticker"
local JOIN_TIMEOUT = "30s"
local RESUBSCRIBE_EVERY = "20ms"

local function send_text(client, value)
  process.send(client, "ws.send", { type = "text", data = json.encode(value) })
end

-- Subscribes to the ticker if it is registered: returns its pid, or nil
-- (not registered yet: it is restarting), or nil plus an error (denied).
-- `since` (the last seq the client saw) goes with the first subscription.
local function subscribe(client, since)
  local ticker, err = process.registry.lookup(TICKER)
  if not ticker then
    if tostring(err):find("no process registered", 1, true) then return nil end
    return nil, err
  end
  process.monitor(ticker)
  process.send(ticker, "subscribe", { client_pid = client, since = since })
  return tostring(ticker)
end

local function is_ping(payload)
  if type(payload) ~= "table" or payload.type ~= "text" or type(payload.data) ~= "string" then
    return false
  end
  local msg = json.decode(payload.data)
  return type(msg) == "table" and msg.type == "ping"
end

local function main()
  local inbox = process.inbox()
  local events = process.events()
  local join_timeout = time.after(JOIN_TIMEOUT)
  local client, ticker
  local retry -- a time.ticker while looking for the ticker

  while true do
    local cases = { inbox:case_receive(), events:case_receive() }
    if not client then cases[#cases + 1] = join_timeout:case_receive() end
    if retry then cases[#cases + 1] = retry:response():case_receive() end
    local r = channel.select(cases)

    if r.channel == inbox then
      local msg = r.value
      local topic = msg:topic()
      local payload = msg:payload():data()
      if topic == "ws.join" and not client then
        if type(payload) ~= "table" or type(payload.client_pid) ~= "string" then
          return nil, "ws.join without a valid client_pid"
        end
        client = payload.client_pid
        local metadata = type(payload.metadata) == "table" and payload.metadata or {}
        send_text(client, { type = "welcome", user_id = metadata.user_id or "" })
        local err
        ticker, err = subscribe(client, tonumber(metadata.since))
        if err then return nil, "ticker lookup: " .. tostring(err) end
        if not ticker then retry = time.ticker(RESUBSCRIBE_EVERY) end
      elseif topic == "ws.message" and client then
        if is_ping(payload) then send_text(client, { type = "pong" }) end
      elseif topic == "ws.leave" then
        if ticker then process.send(ticker, "unsubscribe", {}) end
        return true
      end
    elseif r.channel == events then
      local ev = r.value
      if ev and ev.kind == process.event.EXIT and ticker and tostring(ev.from) == ticker then
        -- The ticker is restarting: look for its successor.
        ticker = nil
        if not retry then retry = time.ticker(RESUBSCRIBE_EVERY) end
      end
    elseif r.channel == join_timeout then
      return true -- no connection came
    elseif retry and r.channel == retry:response() then
      local err
      ticker, err = subscribe(client)
      if err then return nil, "ticker lookup: " .. tostring(err) end
      if ticker then
        retry:stop()
        retry = nil
      end
    end
  end
end

return { main = main }
