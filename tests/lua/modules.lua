-- Runs one module group named by args.group and sends the results to args.to.
local json = require("json")

local groups = {}

function groups.json()
  local r = {}
  r.empty = json.encode({})
  r.array = json.encode({ 1, 2, 3 })
  r.object = json.decode('{"a":[1,2],"b":"x"}')
  local v, err = json.decode("{nope")
  r.bad_nil = (v == nil)
  r.bad_err = tostring(err)
  r.roundtrip = json.encode(json.decode('{"list":[]}'))
  return r
end

function groups.crypto()
  local crypto = require("crypto")
  return {
    bytes = #crypto.random.bytes(16),
    str = crypto.random.string(12),
    sha = crypto.sha256("abc"),
    hmac = crypto.hmac.sha256("key", "The quick brown fox jumps over the lazy dog"),
  }
end

function groups.time()
  local time = require("time")
  local t0 = time.now()
  time.sleep("20ms")
  local slept = time.now() - t0
  local ch = time.after(10)
  local fired = ch:receive() ~= nil
  local ticker = time.ticker("5ms")
  local ticks = 0
  for _ = 1, 3 do ticker:response():receive(); ticks = ticks + 1 end
  ticker:stop()
  local _, err = time.ticker("soon")
  return { slept_enough = slept >= 20, fired = fired, ticks = ticks, bad_duration = tostring(err) }
end

function groups.sql(args)
  local sql = require("sql")
  local db, err = sql.get(args.db)
  if not db then return { err = err } end
  assert(db:execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER)"))
  local res = db:execute("INSERT INTO kv (k, v) VALUES (?, ?)", { "a", 1 })
  db:execute("INSERT INTO kv (k, v) VALUES (?, ?)", { "b", 2 })
  local rows = db:query("SELECT k, v FROM kv WHERE v >= ? ORDER BY k", { 1 })
  local bad_rows, bad_err = db:query("SELECT * FROM missing_table", {})
  local _, unreachable = sql.get("t:nope")
  db:release()
  return {
    rows_affected = res.rows_affected, last_insert_id = res.last_insert_id,
    rows = rows, bad_nil = bad_rows == nil, bad_err = tostring(bad_err),
    unreachable = tostring(unreachable),
  }
end

function groups.store(args)
  local store = require("store")
  local s = assert(store.get(args.store))
  s:set("k", { n = 1 })
  local got = s:get("k")
  s:set("short", "x", "1ms")
  local deleted = s:delete("k")
  return { got = got.n, deleted = deleted, after = s:get("k") == nil }
end

function groups.security(args)
  local security = require("security")
  local ts = assert(security.token_store(args.tokens))
  local token = assert(ts:create(security.new_actor("user:lua", { role = "x" }), { "p" }, { expiration = "1h" }))
  local actor, scope = ts:validate(token)
  local revoked = ts:revoke(token)
  local a2, _, err = ts:validate(token)
  return {
    id = actor:id(), role = actor:meta().role, scope = scope,
    revoked = revoked, after_nil = a2 == nil, after_err = tostring(err),
    me = security.actor() == nil,
  }
end

function groups.scopes(args)
  local security = require("security")
  local bad, err = security.policy("not an id")
  local p = assert(security.policy("t:p"))
  local scope = security.new_scope({ p }):with("t:q")
  local ts = assert(security.token_store(args.tokens))
  local token = assert(ts:create(security.new_actor("user:lua"), scope, { expiration = "1h" }))
  local _, got = ts:validate(token)
  return {
    bad_nil = bad == nil, bad_err = tostring(err), id = p:id(),
    policies = scope:policies(), scope = got,
  }
end

function groups.logger()
  local logger = require("logger")
  logger:info("hello from lua", { k = 1, s = "x" })
  logger:warn("plain")
  return { ok = true }
end

-- Waiting calls inside coroutines the code creates itself.
function groups.nested()
  local time = require("time")
  local co = coroutine.create(function(a)
    time.sleep("5ms")
    local b = coroutine.yield(a + 1)
    local msg = process.inbox():receive()
    return b + msg:payload():data().n
  end)
  local ok1, first = coroutine.resume(co, 1)
  process.send(process.pid(), "n", { n = 100 })
  local ok2, second = coroutine.resume(co, 10)
  local w = coroutine.wrap(function() time.sleep(1); return "wrapped" end)
  return { ok1 = ok1, first = first, ok2 = ok2, second = second, wrapped = w(),
           dead = coroutine.status(co) }
end

function groups.denied()
  local ok, err = pcall(require, "sql")
  return { ok = ok, err = tostring(err) }
end

function groups.process(args)
  local pid, err = process.spawn_monitored(args.echo, args.host)
  if not pid then return { err = err } end
  process.send(pid, "hi", { n = 1 })
  local reply = process.inbox():receive()
  process.send(pid, "fail", {})
  local ev = process.events():receive()
  local looked, lerr = process.registry.lookup("nobody")
  local _, spawn_err = process.spawn("t:nothing", args.host)
  return {
    reply_topic = reply:topic(), reply_n = reply:payload():data().data.n,
    exit_kind = ev.kind, exit_from_matches = ev.from == pid, exit_error = ev.result.error,
    lookup_nil = looked == nil, lookup_err = tostring(lerr), spawn_err = tostring(spawn_err),
    pid_is_string = type(process.pid()) == "string",
  }
end

function groups.channel()
  local ch = channel.new(4)
  ch:send("a")
  ch:send("b")
  local first = ch:receive()
  local r = channel.select({ ch:case_receive(), process.inbox():case_receive() })
  ch:close()
  local v, ok = ch:receive()
  return { first = first, selected = r.value, same = r.channel == ch, closed_ok = ok, closed_v = v == nil }
end

local function run(args)
  local ok, result = pcall(groups[args.group], args)
  if not ok then result = { raised = tostring(result) } end
  process.send(args.to, "result", result)
end

return { run = run }
