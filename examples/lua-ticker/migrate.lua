-- migrate: creates the api_keys schema and, on first start, the demo key.
--
-- Runs once at boot as a service and returns (a normal exit). Only the
-- SHA-256 digest of a key is stored; keys are "rk_" + 40 hex characters
-- (160 random bits). The demo key is logged once, when it is created
-- (`demo API key created api_key=<key>`): Lua has no file access, so unlike
-- the Rust edition there is no demo.key file. Lost it? Revoke it with
-- `rippy keys revoke <id>` (same database) and restart, or mint one with
-- `rippy keys create`.

local sql = require("sql")
local crypto = require("crypto")
local logger = require("logger")

local DEMO_USER = "demo"

-- The same schema as actors/api_keys.rs (idempotent).
local SCHEMA = {
  [[CREATE TABLE IF NOT EXISTS api_keys (
    id          INTEGER PRIMARY KEY,
    key_hash    TEXT    NOT NULL UNIQUE,
    user_id     TEXT    NOT NULL,
    role        TEXT    NOT NULL DEFAULT 'user',
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
  )]],
  "CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user_id)",
}

local function new_key()
  local bytes, err = crypto.random.bytes(20)
  if not bytes then return nil, err end
  local hex = {}
  for i = 1, #bytes do
    hex[i] = string.format("%02x", bytes:byte(i))
  end
  return "rk_" .. table.concat(hex)
end

local function migrate(db, db_id)
  for _, statement in ipairs(SCHEMA) do
    local _, err = db:execute(statement)
    if err then return nil, "schema: " .. tostring(err) end
  end

  local rows, err = db:query(
    "SELECT COUNT(*) AS n FROM api_keys WHERE user_id = ? AND revoked_at IS NULL",
    { DEMO_USER })
  if err then return nil, "demo key lookup: " .. tostring(err) end

  if rows[1] and tonumber(rows[1].n) > 0 then
    logger:info("demo API key exists", { user_id = DEMO_USER })
  else
    local key, key_err = new_key()
    if not key then return nil, "random: " .. tostring(key_err) end
    local _, insert_err = db:execute(
      "INSERT INTO api_keys (key_hash, user_id, role, created_at) VALUES (?, ?, ?, ?)",
      { crypto.sha256(key), DEMO_USER, "user", os.time() })
    if insert_err then return nil, "demo key insert: " .. tostring(insert_err) end
    -- The one place a key is ever logged: at its creation.
    logger:info("demo API key created", { api_key = key })
  end

  logger:info("migrations applied", { db = db_id })
  return true
end

local function main(args)
  local db_id = (args and args.db) or "app:db"
  local db, err = sql.get(db_id)
  if not db then
    return nil, "cannot open " .. db_id .. ": " .. tostring(err)
  end
  local ok, why = migrate(db, db_id)
  db:release()
  if not ok then return nil, why end
  return true
end

return { main = main }
