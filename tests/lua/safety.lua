-- Misbehaving processes, one per method.
local M = {}

function M.raise() error("boom from lua") end
function M.returns_error() return nil, "why not" end
function M.spin() while true do end end
function M.spin_in_coroutine() coroutine.wrap(function() while true do end end)() end
function M.hog()
  local t = {}
  local s = string.rep("x", 1024)
  for i = 1, 1e9 do t[i] = s .. i end
end

-- Reports which forbidden things are reachable.
function M.forbidden(args)
  local r = {
    io = io ~= nil, debug = debug ~= nil, package = package ~= nil,
    dofile = dofile ~= nil, loadfile = loadfile ~= nil,
    os_execute = os.execute ~= nil, os_exit = os.exit ~= nil, os_getenv = os.getenv ~= nil,
    string_dump = string.dump ~= nil,
    os_time = type(os.time()) == "number",
  }
  local f = load("return 1 + 1")
  r.load_text = f and f() == 2
  local bin, berr = load("\27Lua\84\0", "b", "b")
  r.load_binary = bin ~= nil
  r.load_binary_err = tostring(berr)
  local ok, err = pcall(require, "json")
  r.require_unlisted = ok
  r.require_err = tostring(err)
  local ok2 = pcall(require, "os")
  r.require_c = ok2
  process.send(args.to, "result", r)
end

return M
