-- auth_token: POST /auth/token trades an API key for a token.
--
-- Wire (DESIGN.md section 5), the same as the Rust edition: invalid JSON ->
-- 400 `invalid JSON`; missing, empty or non-string api_key -> 400
-- `api_key required`; unknown or revoked key -> 401 `invalid API key`; a
-- database failure -> 500 `internal error`; ok -> 200 `{token, user_id,
-- role, expires_in}` with `Cache-Control: no-store`. The body limit (413)
-- is the HTTP layer's.
--
-- Failed exchanges are counted per client address in a store
-- (args.attempts_store); past args.max_failures within args.failure_window
-- seconds the address gets 429 `too many failed attempts` with
-- Retry-After until the window ends. Successes are not counted. The count
-- is a read-then-write (the store API has no increment), so concurrent
-- failures from one address can undercount by a few.

local http = require("http")
local json = require("json")
local sql = require("sql")
local store = require("store")
local crypto = require("crypto")
local security = require("security")
local logger = require("logger")

-- The token lifetime, in seconds: `expires_in` and the token's expiration.
local TOKEN_LIFETIME = 3600

local function reply_error(res, status, message, retry_after)
  res:set_status(status)
  if retry_after then res:set_header("Retry-After", tostring(retry_after)) end
  res:write_json({ error = message })
end

-- "127.0.0.1:5000" or "[::1]:5000" -> the address without its port.
local function client_ip(req)
  local addr = tostring(req:remote_addr() or "")
  return addr:match("^%[(.-)%]:%d+$") or addr:match("^([^:]+):%d+$") or addr
end

local function attempts(cfg, req)
  local s = store.get(cfg.attempts_store or "app:token_data")
  return {
    store = s,
    key = "auth_token.failures:" .. client_ip(req),
    max = tonumber(cfg.max_failures) or 20,
    window = tonumber(cfg.failure_window_s) or 60,
  }
end

-- Seconds until the window ends if the address is over its limit.
local function refused(a)
  if not a.store then return nil end
  local entry = a.store:get(a.key)
  if type(entry) ~= "table" then return nil end
  local left = (tonumber(entry.reset_at) or 0) - os.time()
  if left > 0 and (tonumber(entry.count) or 0) >= a.max then
    return math.max(1, left)
  end
  return nil
end

local function failed(a)
  if not a.store then return end
  local now = os.time()
  local entry = a.store:get(a.key)
  if type(entry) ~= "table" or (tonumber(entry.reset_at) or 0) <= now then
    entry = { count = 0, reset_at = now + a.window }
  end
  entry.count = (tonumber(entry.count) or 0) + 1
  a.store:set(a.key, entry, (entry.reset_at - now) * 1000)
end

-- The owner of `key` if it exists and is not revoked; err on a database failure.
local function lookup(db_id, key)
  local db, err = sql.get(db_id)
  if not db then return nil, err end
  local rows, qerr = db:query(
    "SELECT id, user_id, role FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
    { crypto.sha256(key) })
  db:release()
  if qerr then return nil, qerr end
  return rows[1]
end

local function exchange(cfg, req, res)
  local body, decode_err = json.decode(req:body() or "")
  if decode_err then return "invalid JSON" end
  local api_key = type(body) == "table" and body.api_key or nil
  if type(api_key) ~= "string" or api_key == "" then return "api_key required" end

  local owner, err = lookup(cfg.db or "app:db", api_key)
  if err then
    logger:error("token exchange failed", { error = tostring(err) })
    return nil, "internal"
  end
  if not owner then return "invalid API key" end

  local tokens, terr = security.token_store(cfg.tokens or "app:tokens")
  if not tokens then
    logger:error("token exchange failed", { error = tostring(terr) })
    return nil, "internal"
  end
  local actor = security.new_actor("user:" .. owner.user_id, {
    user_id = owner.user_id,
    role = owner.role,
    api_key_id = owner.id,
  })
  -- The token's scope: the policy ids the manifest lists.
  local token, cerr = tokens:create(actor, cfg.scope or { "app:user_policy" }, {
    expiration = TOKEN_LIFETIME * 1000,
    meta = { api_key_id = owner.id },
  })
  tokens:close()
  if not token then
    logger:error("token exchange failed", { error = tostring(cerr) })
    return nil, "internal"
  end

  logger:info("token issued", { user_id = owner.user_id, role = owner.role })
  -- A credential: no cache (browser, proxy) may keep it (RFC 6749 5.1).
  res:set_header("Cache-Control", "no-store")
  res:set_header("Pragma", "no-cache")
  res:set_status(200)
  res:write_json({
    token = token,
    user_id = owner.user_id,
    role = owner.role,
    expires_in = TOKEN_LIFETIME,
  })
end

local STATUS = {
  ["invalid JSON"] = 400,
  ["api_key required"] = 400,
  ["invalid API key"] = 401,
}

local function handler(args)
  local cfg = args or {}
  local req, res = http.request(), http.response()
  local a = attempts(cfg, req)
  local retry_after = refused(a)
  if retry_after then
    return reply_error(res, 429, "too many failed attempts", retry_after)
  end
  local client_error, internal = exchange(cfg, req, res)
  if internal then
    return reply_error(res, 500, "internal error")
  end
  if client_error then
    failed(a)
    return reply_error(res, STATUS[client_error], client_error)
  end
end

return { handler = handler }
