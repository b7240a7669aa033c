-- HTTP endpoint functions (modules are required where used: each entry
-- lists only what its own method needs).
local M = {}

function M.hello()
  local http = require("http")
  local req, res = http.request(), http.response()
  local body, err = req:body_json()
  res:set_status(http.STATUS.CREATED)
  res:set_header("X-Lua", "yes")
  res:write_json({ method = req:method(), path = req:path(), name = req:query("name"),
                   got = body and body.n, err = err and "bad json" or nil })
end

function M.fails() error("function boom") end
function M.spins() while true do end end

-- A WebSocket endpoint: spawns a per-connection Lua handler and relays to it.
function M.ws(args)
  local http, json = require("http"), require("json")
  local res = http.response()
  local pid, err = process.spawn(args.handler, args.host)
  if not pid then
    res:set_status(http.STATUS.FORBIDDEN)
    res:write(tostring(err))
    return
  end
  res:set_header("X-WS-Relay", json.encode({ target_pid = tostring(pid), metadata = { via = "lua" } }))
end

-- A relay answer the relay cannot use: a 500, never a panic.
function M.bad_relay()
  require("http").response():set_header("X-WS-Relay", '{"target_pid": 5}')
end

-- The per-connection handler: echoes text frames upper-cased, except two
-- that ask for a payload that is not a table: a string, a number.
function M.ws_handler()
  local inbox = process.inbox()
  local client
  while true do
    local msg = inbox:receive()
    local topic, data = msg:topic(), msg:payload():data()
    if topic == "ws.join" then
      client = data.client_pid
      process.send(client, "ws.send", { type = "text", data = "hello from lua via " .. tostring(data.metadata.via) })
    elseif topic == "ws.message" then
      local text = tostring(data.data)
      if text == "as a string" then
        process.send(client, "ws.send", "a string payload")
      elseif text == "as a number" then
        process.send(client, "ws.send", 42)
      else
        process.send(client, "ws.send", { type = "text", data = string.upper(text) })
      end
    elseif topic == "ws.leave" then
      return
    end
  end
end

return M
