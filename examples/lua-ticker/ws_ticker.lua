-- ws_ticker: GET /ws/ticker spawns a ws_handler for the caller and asks the
-- relay to upgrade (the X-WS-Relay header). No identity (no, bad, revoked
-- or expired token, or a token whose API key has since been revoked) -> 401
-- `{"error":"authentication required"}` before any upgrade; a scope that
-- may not spawn the handler -> 403. `?since=<seq>` (the last seq the
-- client saw) asks for the ticks it missed; anything but a sequence number
-- there -> 400.

local http = require("http")
local json = require("json")
local sql = require("sql")
local security = require("security")
local logger = require("logger")

local function fail(res, status, message)
  res:set_status(status)
  res:write_json({ error = message })
end

-- Whether the API key a token was issued for is still live.
local function key_is_active(db_id, key_id)
  local db, err = sql.get(db_id)
  if not db then return nil, err end
  local rows, qerr = db:query(
    "SELECT COUNT(*) AS n FROM api_keys WHERE id = ? AND revoked_at IS NULL", { key_id })
  db:release()
  if qerr then return nil, qerr end
  return rows[1] ~= nil and tonumber(rows[1].n) > 0
end

-- The since query parameter: nil when absent, false when malformed.
local function since_of(req)
  local v = req:query("since")
  if v == nil then return nil end
  if #v == 0 or #v > 15 or not v:match("^%d+$") then return false end
  return tonumber(v)
end

local function handler(args)
  args = args or {}
  local db_id = args.db or "app:db"
  local entry = args.handler or "app:ws_handler"
  local host = args.host or "app:ws_processes"
  local res = http.response()

  local actor = security.actor()
  if not actor then
    return fail(res, 401, "authentication required")
  end
  local meta = actor:meta() or {}
  local since = since_of(http.request())
  if since == false then
    return fail(res, 400, "since must be a sequence number")
  end

  -- A token outlives nothing: its API key must still be active.
  if meta.api_key_id ~= nil then
    local active, err = key_is_active(db_id, meta.api_key_id)
    if err then
      logger:error("api key check failed", { error = tostring(err) })
      return fail(res, 503, "service unavailable")
    end
    if not active then
      return fail(res, 401, "authentication required")
    end
  end

  if not (security.can("process.spawn", entry) and security.can("process.host", host)) then
    logger:warn("handler spawn refused", { user = actor:id() })
    return fail(res, 403, "forbidden")
  end
  local pid, err = process.spawn(entry, host)
  if not pid then
    logger:error("handler spawn failed", { error = tostring(err) })
    return fail(res, 503, "service unavailable")
  end

  res:set_header("X-WS-Relay", json.encode({
    target_pid = tostring(pid),
    metadata = { user_id = actor:id(), role = meta.role or "", since = since },
  }))
  res:set_status(200)
end

return { handler = handler }
